package train

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph"

	"github.com/switchkd/switchkd/distill"
)

// The objective's types live in distill; train re-exports them under the names its callers use.

// Divergence names a distillation term (distill.Divergence).
type Divergence = distill.Divergence

const (
	DBiLD = distill.DivDBiLD
	BiLD  = distill.DivBiLD
	FKL   = distill.DivFKL
	RKL   = distill.DivRKL
	JSD   = distill.DivJSD
	None  = distill.DivNone
)

// ParseDivergence validates a divergence name.
func ParseDivergence(s string) (Divergence, error) { return distill.ParseDivergence(s) }

// Objective is total = WCE*CE + WAlign*D_align(teacher, student) + WVSD*D_vsd(teacher, switch).
type Objective = distill.ObjectiveOptions

// DefaultObjective is Switch-KD's: DBiLD for both terms, tau 3, all weights 1.
func DefaultObjective() Objective { return distill.DefaultObjectiveOptions() }

// validateObjective checks divergence names and settings.
func validateObjective(o Objective) error {
	for _, d := range []Divergence{o.Align, o.VSD} {
		if _, err := ParseDivergence(string(d)); err != nil {
			return err
		}
	}
	if o.Tau <= 0 {
		return fmt.Errorf("objective: tau must be positive, got %g", o.Tau)
	}
	if o.WCE < 0 || o.WAlign < 0 || o.WVSD < 0 {
		return fmt.Errorf("objective: weights must be >= 0")
	}
	return nil
}

// perPosition returns the divergence between teacher logits t and student logits s, [N, V]
// each, per position [N]; mask [N] float zeroes padding rows.
func perPosition(d Divergence, t, s, mask *Node, o Objective) *Node {
	return distill.ApplyDivergence(d, t, s, mask, o)
}
