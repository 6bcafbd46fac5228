package distill

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // graph DSL
)

// Top-M selection without the backend's Sort.
//
// graph.TopK sorts the whole axis with a comparator closure that the go backend runs once per
// comparison: about 2 s per row of 151936, which rules it out for vocabulary-sized rows. Here the
// selection is exact (same result as a stable descending sort, lower index first among equal
// values) and built from ArgMax, Gather and ScatterMin:
//
//   - Small rows: M rounds of ArgMax over the values (float64, -inf raised to -MaxFloat64), each
//     taking the winner out (lowered to -inf); ArgMax's first-of-equals is the lower index.
//   - Vocabulary-sized rows: a two-level tournament over unique int64 keys that order like
//     (value descending, index ascending): key = (orderBits(value) + 2^31) << B | (2^B - 1 -
//     index), B = bits needed for V. The row is cut into nb strided blocks of
//     size 64 (block b = {b, b+nb, b+2nb, ...}); one ArgMax pass over the row gives each block's
//     head, and superblocks of 64 blocks keep the max of their heads. Each of the M rounds picks the
//     best superblock, the best block in it, outputs that block's head, and refills the block with
//     its best entry ranking after the head (64 gathered entries). A round touches about 200
//     entries per row, so the cost is one pass over the row plus M small rounds.

const (
	tourBlock  = 64   // entries per strided block
	tourFan    = 64   // blocks per superblock
	tourMinLen = 4096 // rows shorter than this use the plain M-round ArgMax selection
)

// keyBits returns B, the number of low bits of a key that hold the (reversed) index.
func keyBits(v int) int {
	b := bits.Len(uint(v - 1))
	if b < 1 {
		b = 1
	}
	if 32+b > 62 {
		panic(fmt.Sprintf("distill: axis of %d entries is too long for top-M keys", v))
	}
	return b
}

// orderKeys maps float32 values and their int32 indices (same shape) to unique int64 keys
// ordered like (value descending, index ascending). -0 and +0 get the same value part.
// NaN is not supported.
func orderKeys(values, indices *Node, b int) *Node {
	g := values.Graph()
	if values.DType() != dtypes.Float32 {
		values = ConvertDType(values, dtypes.Float32)
	}
	values = Add(values, ScalarZero(g, dtypes.Float32)) // -0 + 0 = +0
	u := Bitcast(values, dtypes.Int32)
	neg := LessThan(u, ScalarZero(g, dtypes.Int32))
	u = Where(neg, BitwiseXor(u, Scalar(g, dtypes.Int32, 0x7FFFFFFF)), u)
	k := AddScalar(ConvertDType(u, dtypes.Int64), int64(1)<<31)
	k = MulScalar(k, int64(1)<<b)
	rev := Sub(Scalar(g, dtypes.Int64, (int64(1)<<b)-1), ConvertDType(indices, dtypes.Int64))
	return Add(k, rev)
}

// keyIndex decodes the index part of keys made by orderKeys.
func keyIndex(keys *Node, b int) *Node {
	g := keys.Graph()
	low := BitwiseAnd(keys, Scalar(g, dtypes.Int64, (int64(1)<<b)-1))
	return ConvertDType(Sub(Scalar(g, dtypes.Int64, (int64(1)<<b)-1), low), dtypes.Int32)
}

// TopMIndices returns the int32 indices [N, m] of the m largest entries of each row of x [N, V],
// in descending order; among equal values the lower index comes first (the order of a stable
// descending sort). The selection carries no gradient. x must be float32 (other float dtypes are
// converted) and free of NaN; -inf and huge finite values are fine.
func TopMIndices(x *Node, m int) *Node {
	if x.Rank() != 2 {
		panic(fmt.Sprintf("distill.TopMIndices: x must be [N, V], got %s", x.Shape()))
	}
	v := x.Shape().Dimensions[1]
	if m < 1 || m > v {
		panic(fmt.Sprintf("distill.TopMIndices: m=%d out of range for V=%d", m, v))
	}
	// One graph often selects from the same logits more than once: the teacher's, for DBiLD's
	// align and visual-switch terms, and BiLD's top-k is a prefix of DBiLD's top-M. The
	// selection is deterministic, so each node's widest selection is kept in the graph's state
	// and narrower requests take its first m columns.
	memo, _ := x.Graph().State(topMMemoKey{}).(map[*Node]*Node)
	if memo == nil {
		memo = map[*Node]*Node{}
		x.Graph().AttachState(topMMemoKey{}, memo)
	}
	if idx := memo[x]; idx != nil && idx.Shape().Dimensions[1] >= m {
		if idx.Shape().Dimensions[1] == m {
			return idx
		}
		return Slice(idx, AxisRange(), AxisRange(0, m))
	}
	// No StopGradient needed: the result is integer (ArgMax/keys), and an Identity would copy x.
	var idx *Node
	if v < tourMinLen {
		idx = topMRounds(x, m)
	} else {
		idx = topMTournament(x, m)
	}
	memo[x] = idx
	return idx
}

// topMMemoKey keys the graph state that holds TopMIndices' selections (see there).
type topMMemoKey struct{}

// topMRounds: m rounds of ArgMax over the row; the winner is then lowered to -inf in place with
// ScatterMin (N updates, no pass over the row). The values are float64 with -inf raised to
// -MaxFloat64, which is below every float32 value, so a lowered winner ranks below everything
// left, -inf entries included. ArgMax returns the first of equal maxima, the lowest index: the
// order of a stable descending sort, as the keys of the tournament encode it. The values are kept
// as [V, N]: the go backend's ArgMax then runs its inner loop over the N rows side by side
// instead of one row at a time (faster on the go backend).
//
// Each round is three ops in a chain (ArgMax, Concatenate, ScatterMin): the values carry a unit
// axis, [V, N, 1], so that ArgMax's result is already the [N, 1] column that the scatter's
// coordinates and the output are concatenated from, with no reshape.
func topMRounds(x *Node, m int) *Node {
	g := x.Graph()
	n, v := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	if x.DType() != dtypes.Float32 { // as the keys: float32 order (a float64 input is rounded)
		x = ConvertDType(x, dtypes.Float32)
	}
	// Transposed in float32 (half the bytes), then widened.
	vals := MaxScalar(ConvertDType(Reshape(Transpose(x, 0, 1), v, n, 1), dtypes.Float64), -math.MaxFloat64) // [V, N, 1]
	iotaN := Iota(g, shapes.Make(dtypes.Int32, n, 1), 0)
	lowered := BroadcastToDims(Infinity(g, dtypes.Float64, -1), n)
	out := make([]*Node, m)
	for r := range m {
		out[r] = ArgMax(vals, 0, dtypes.Int32) // [N, 1]
		if r+1 < m {
			// Coordinates (winner, row, 0) of each row's winner.
			at := Concatenate([]*Node{out[r], iotaN, ZerosLike(iotaN)}, 1)
			vals = ScatterMin(vals, at, lowered, false, true)
		}
	}
	return Concatenate(out, 1)
}

// topMTournament: the two-level tournament over strided blocks (see the file comment).
func topMTournament(x *Node, m int) *Node {
	g := x.Graph()
	n, v := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	if x.DType() != dtypes.Float32 {
		x = ConvertDType(x, dtypes.Float32)
	}
	vp := (v + tourBlock - 1) / tourBlock * tourBlock
	if vp != v {
		x = Pad(x, Infinity(g, dtypes.Float32, -1), padAxis(0, 0), padAxis(0, vp-v))
	}
	b := keyBits(vp)
	nb := vp / tourBlock
	nbp := (nb + tourFan - 1) / tourFan * tourFan
	ns := nbp / tourFan
	iotaN := Iota(g, shapes.Make(dtypes.Int32, n), 0)

	// Block heads: ArgMax over the strided layout [N, 64, nb] along the 64 axis (first max wins,
	// which is the lowest index since index = r*nb + block).
	rStar := ArgMax(Reshape(x, n, tourBlock, nb), 1, dtypes.Int32) // [N, nb]
	iotaB := Iota(g, shapes.Make(dtypes.Int32, n, nb), 1)
	headIdx := Add(MulScalar(rStar, nb), iotaB)
	headVal := Gather(x, Stack([]*Node{Iota(g, shapes.Make(dtypes.Int32, n, nb), 0), headIdx}, -1)) // [N, nb]
	bk := orderKeys(headVal, headIdx, b)
	if nbp != nb {
		bk = Pad(bk, Scalar(g, dtypes.Int64, -1), padAxis(0, 0), padAxis(0, nbp-nb))
	}
	bk = Reshape(bk, n, ns, tourFan)
	sk := ReduceMax(bk, 2) // [N, ns]

	iotaF := Iota(g, shapes.Make(dtypes.Int32, n, tourFan), 1)
	iotaR := MulScalar(Iota(g, shapes.Make(dtypes.Int32, n, tourBlock), 1), nb) // r*nb
	iotaNR := Iota(g, shapes.Make(dtypes.Int32, n, tourBlock), 0)
	minus1F := BroadcastToDims(Scalar(g, dtypes.Int64, -1), n, tourFan)
	minus1R := BroadcastToDims(Scalar(g, dtypes.Int64, -1), n, tourBlock)
	out := make([]*Node, m)
	for r := range m {
		js := ArgMax(sk, 1, dtypes.Int32)                // [N]
		seg := Gather(bk, Stack([]*Node{iotaN, js}, -1)) // [N, F]
		bl := ArgMax(seg, 1, dtypes.Int32)               // [N]
		kStar := ReduceMax(seg, 1)                       // [N]
		out[r] = keyIndex(kStar, b)
		if r+1 == m {
			break
		}
		blk := Add(MulScalar(js, tourFan), bl) // [N] block index
		// Refill the block with its best entry ranking after kStar.
		elIdx := Add(iotaR, BroadcastToDims(InsertAxes(blk, -1), n, tourBlock)) // [N, 64]
		elVal := Gather(x, Stack([]*Node{iotaNR, elIdx}, -1))                   // [N, 64]
		ek := orderKeys(elVal, elIdx, b)
		ek = Where(GreaterOrEqual(ek, BroadcastToDims(InsertAxes(kStar, -1), n, tourBlock)), minus1R, ek)
		newK := ReduceMax(ek, 1) // [N]
		bk = ScatterMin(bk, Stack([]*Node{iotaN, js, bl}, 1), newK, false, true)
		seg2 := Where(Equal(iotaF, BroadcastToDims(InsertAxes(bl, -1), n, tourFan)),
			BroadcastToDims(InsertAxes(newK, -1), n, tourFan), seg)
		seg2 = Max(seg2, minus1F)
		sk = ScatterMin(sk, Stack([]*Node{iotaN, js}, 1), ReduceMax(seg2, 1), false, true)
	}
	return Stack(out, 1)
}

func padAxis(start, end int) compute.PadAxis { return compute.PadAxis{Start: start, End: end} }
