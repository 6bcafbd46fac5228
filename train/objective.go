package train

import (
	"fmt"
	"strings"

	. "github.com/gomlx/gomlx/core/graph"

	"github.com/switchkd/switchkd/distill"
)

// Divergence names a distillation term.
type Divergence string

const (
	DBiLD Divergence = "dbild"
	BiLD  Divergence = "bild"
	FKL   Divergence = "fkl"
	RKL   Divergence = "rkl"
	JSD   Divergence = "jsd"
	None  Divergence = "none"
)

// ParseDivergence validates a divergence name.
func ParseDivergence(s string) (Divergence, error) {
	switch d := Divergence(strings.ToLower(strings.TrimSpace(s))); d {
	case DBiLD, BiLD, FKL, RKL, JSD, None:
		return d, nil
	}
	return "", fmt.Errorf("unknown divergence %q (valid: dbild, bild, fkl, rkl, jsd, none)", s)
}

// Objective is total = WCE*CE + WAlign*D_align(teacher, student) + WVSD*D_vsd(teacher, switch).
type Objective struct {
	WCE    float64              `yaml:"w_ce" json:"w_ce"`
	WAlign float64              `yaml:"w_align" json:"w_align"`
	WVSD   float64              `yaml:"w_vsd" json:"w_vsd"`
	Align  Divergence           `yaml:"align" json:"align"`
	VSD    Divergence           `yaml:"vsd" json:"vsd"`
	Tau    float64              `yaml:"tau" json:"tau"`
	DBiLD  distill.DBiLDOptions `yaml:"-" json:"dbild"`
	BiLDK  int                  `yaml:"bild_k" json:"bild_k"`
}

// DefaultObjective is Switch-KD's: DBiLD for both terms, tau 3, all weights 1.
func DefaultObjective() Objective {
	return Objective{WCE: 1, WAlign: 1, WVSD: 1, Align: DBiLD, VSD: DBiLD, Tau: 3, DBiLD: distill.DefaultDBiLDOptions(), BiLDK: 8}
}

// Validate checks divergence names and settings.
func (o Objective) Validate() error {
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
	switch d {
	case DBiLD:
		opts := o.DBiLD
		opts.Tau = o.Tau
		return distill.DBiLD(t, s, mask, opts)
	case BiLD:
		return distill.BiLD(t, s, mask, o.BiLDK, o.Tau)
	case FKL:
		return distill.ForwardKL(t, s, mask, o.Tau)
	case RKL:
		return distill.ReverseKL(t, s, mask, o.Tau)
	case JSD:
		return distill.JSD(t, s, mask, o.Tau)
	}
	panic(fmt.Sprintf("train: divergence %q has no per-position loss", d))
}
