package distill

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // graph DSL
)

// MaskedMean averages per-position losses [N] over the valid positions (mask > 0), accumulating
// in float64: sum(loss·[mask>0]) / max(count, 1). It returns a float32 scalar. Padding rows are
// selected out (not multiplied), so a NaN there cannot leak.
func MaskedMean(perPos, mask *Node) *Node {
	g := perPos.Graph()
	x := ConvertDType(perPos, dtypes.Float64)
	var cnt *Node
	if mask == nil {
		cnt = Scalar(g, dtypes.Float64, float64(perPos.Shape().Dimensions[0]))
	} else {
		keep := GreaterThan(mask, ScalarZero(g, mask.DType()))
		x = Where(keep, x, ZerosLike(x))
		cnt = ReduceAllSum(ConvertDType(keep, dtypes.Float64))
	}
	mean := Div(ReduceAllSum(x), Max(cnt, ScalarOne(g, dtypes.Float64)))
	return ConvertDType(mean, perPos.DType())
}

// SegmentMean averages per-position losses [N] per sample: sample [N] int32 in [0, numSamples)
// says which sample each position belongs to. Accumulates in float64; returns [numSamples] in
// perPos's dtype; samples without valid positions get 0.
func SegmentMean(perPos, mask, sample *Node, numSamples int) *Node {
	g := perPos.Graph()
	x := ConvertDType(perPos, dtypes.Float64)
	one := OnesLike(x)
	if mask != nil {
		keep := GreaterThan(mask, ScalarZero(g, mask.DType()))
		x = Where(keep, x, ZerosLike(x))
		one = ConvertDType(keep, dtypes.Float64)
	}
	idx := InsertAxes(ConvertDType(sample, dtypes.Int32), -1)
	shape := shapes.Make(dtypes.Float64, numSamples)
	sum := ScatterSum(Zeros(g, shape), idx, x, false, false)
	cnt := ScatterSum(Zeros(g, shape), idx, one, false, false)
	return ConvertDType(Div(sum, Max(cnt, ScalarOne(g, dtypes.Float64))), perPos.DType())
}
