package distill

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute/dtypes"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // graph DSL
)

// Divergence names a distillation term D(teacher, student).
type Divergence string

const (
	DivDBiLD Divergence = "dbild" // DBiLD (default)
	DivBiLD  Divergence = "bild"  // BiLD, fixed k, forward KL on pair differences
	DivFKL   Divergence = "fkl"   // tau^2 KL(p_T || p_S)
	DivRKL   Divergence = "rkl"   // tau^2 KL(p_S || p_T)
	DivJSD   Divergence = "jsd"   // Jensen-Shannon at tau, no tau^2
	DivNone  Divergence = "none"  // term switched off (zeros)
)

// Divergences lists the valid names, in documentation order.
var Divergences = []Divergence{DivDBiLD, DivBiLD, DivFKL, DivRKL, DivJSD, DivNone}

// ParseDivergence parses a divergence name (case-insensitive, surrounding spaces ignored).
func ParseDivergence(name string) (Divergence, error) {
	n := Divergence(strings.ToLower(strings.TrimSpace(name)))
	for _, d := range Divergences {
		if n == d {
			return d, nil
		}
	}
	valid := make([]string, len(Divergences))
	for i, d := range Divergences {
		valid[i] = string(d)
	}
	return "", fmt.Errorf("unknown divergence %q: valid names are %s", name, strings.Join(valid, ", "))
}

// ObjectiveOptions configures the Switch-KD objective
// L = WCE·CE(z_S) + WAlign·Align(z_T, z_S) + WVSD·VSD(z_T, z_W).
// Tau is the temperature of every divergence (DBiLD uses DBiLD.Tau when set, else Tau).
type ObjectiveOptions struct {
	WCE, WAlign, WVSD float64
	Align, VSD        Divergence
	Tau               float64
	DBiLD             DBiLDOptions
	BiLDK             int
}

// DefaultObjectiveOptions returns the spec's defaults: DBiLD for both terms, tau 3, all weights 1,
// DBiLD window 64 / k_min 4 / k_max 64, BiLD k 8.
func DefaultObjectiveOptions() ObjectiveOptions {
	return ObjectiveOptions{WCE: 1, WAlign: 1, WVSD: 1, Align: DivDBiLD, VSD: DivDBiLD, Tau: 3,
		DBiLD: DefaultDBiLDOptions(), BiLDK: 8}
}

// ApplyDivergence evaluates divergence d between teacher logits t [N, V_T] and student-side
// logits s [N, V_S] per position: [N] float32 (zeros for DivNone). It panics on an unknown name.
func ApplyDivergence(d Divergence, t, s, mask *Node, opts ObjectiveOptions) *Node {
	switch d {
	case DivDBiLD:
		o := opts.DBiLD
		if o.Tau == 0 {
			o.Tau = opts.Tau
		}
		if o.Window == 0 {
			o.Window = 64
		}
		return DBiLD(t, s, mask, o)
	case DivBiLD:
		k := opts.BiLDK
		if k == 0 {
			k = 8
		}
		return BiLD(t, s, mask, k, opts.Tau)
	case DivFKL:
		return ForwardKL(t, s, mask, opts.Tau)
	case DivRKL:
		return ReverseKL(t, s, mask, opts.Tau)
	case DivJSD:
		return JSD(t, s, mask, opts.Tau)
	case DivNone:
		checkPair("ApplyDivergence", t, s, mask)
		return ZerosLike(Reshape(Slice(ConvertDType(s, dtypes.Float32), AxisRange(), AxisRange(0, 1)), s.Shape().Dimensions[0]))
	}
	if _, err := ParseDivergence(string(d)); err != nil {
		panic("distill.ApplyDivergence: " + err.Error())
	}
	return ApplyDivergence(mustParse(d), t, s, mask, opts)
}

func mustParse(d Divergence) Divergence {
	p, err := ParseDivergence(string(d))
	if err != nil {
		panic(err)
	}
	return p
}

// Terms holds the per-position parts of the objective, each [N] float32 (already zero on
// padding rows), and their weighted sum Total.
type Terms struct {
	CE, Align, VSD, Total *Node
}

// Objective builds the Switch-KD objective per position. zT [N, V_T] teacher logits (constant),
// zS [N, V_S] student logits, zW [N, V_T] visual-switch logits (teacher LLM on the student's vision
// features; nil skips the term), labels [N] next-token labels of the supervised positions, mask
// [N] (1 real, 0 padding). Average with MaskedMean (per batch) or SegmentMean (per sample).
func Objective(zT, zS, zW, labels, mask *Node, opts ObjectiveOptions) Terms {
	var tr Terms
	tr.CE = CE(zS, labels, mask)
	tr.Total = MulScalar(tr.CE, opts.WCE)
	if opts.WAlign != 0 && opts.Align != DivNone {
		tr.Align = ApplyDivergence(opts.Align, zT, zS, mask, opts)
		tr.Total = Add(tr.Total, MulScalar(tr.Align, opts.WAlign))
	}
	if zW != nil && opts.WVSD != 0 && opts.VSD != DivNone {
		tr.VSD = ApplyDivergence(opts.VSD, zT, zW, mask, opts)
		tr.Total = Add(tr.Total, MulScalar(tr.VSD, opts.WVSD))
	}
	return tr
}
