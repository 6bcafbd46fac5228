package distill

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/switchkd/switchkd/engine"
)

// Fixtures written by reference/losses_ref.py (float64 PyTorch, one position at a time).

type lossExpect struct {
	PerPos     []float64   `json:"per_pos"`
	Mean       float64     `json:"mean"`
	Grad       [][]float64 `json:"grad"`
	GradSparse [][]float64 `json:"grad_sparse"`
}

type fixtureCase struct {
	Name               string
	N, VT, VS          int
	Tau                float64
	Window, KMin, KMax int
	BiLDK              int    `json:"bild_k"`
	TF32               string `json:"t_f32"`
	SF32               string `json:"s_f32"`
	Labels             []int32
	Mask               []float32
	Expected           map[string]json.RawMessage
}

func (c *fixtureCase) UnmarshalJSON(b []byte) error {
	type raw struct {
		Name     string                     `json:"name"`
		N        int                        `json:"n"`
		VT       int                        `json:"vt"`
		VS       int                        `json:"vs"`
		Tau      float64                    `json:"tau"`
		Window   int                        `json:"window"`
		KMin     int                        `json:"k_min"`
		KMax     int                        `json:"k_max"`
		BiLDK    int                        `json:"bild_k"`
		TF32     string                     `json:"t_f32"`
		SF32     string                     `json:"s_f32"`
		Labels   []int32                    `json:"labels"`
		Mask     []float32                  `json:"mask"`
		Expected map[string]json.RawMessage `json:"expected"`
	}
	var r raw
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	*c = fixtureCase{r.Name, r.N, r.VT, r.VS, r.Tau, r.Window, r.KMin, r.KMax, r.BiLDK, r.TF32, r.SF32, r.Labels, r.Mask, r.Expected}
	return nil
}

func decodeF32(t *testing.T, s string) []float32 {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func loadFixtures(t *testing.T) []fixtureCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "losses", "losses.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []fixtureCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no fixture cases")
	}
	return f.Cases
}

func backend() compute.Backend { return engine.MustBackend("") }

// lossFn builds one loss by name, as the fixtures name them.
func lossFn(name string, c *fixtureCase) func(tt, s, labels, mask *Node) *Node {
	switch name {
	case "ce":
		return func(_, s, labels, mask *Node) *Node { return CE(s, labels, mask) }
	case "fkl":
		return func(tt, s, _, mask *Node) *Node { return ForwardKL(tt, s, mask, c.Tau) }
	case "rkl":
		return func(tt, s, _, mask *Node) *Node { return ReverseKL(tt, s, mask, c.Tau) }
	case "jsd":
		return func(tt, s, _, mask *Node) *Node { return JSD(tt, s, mask, c.Tau) }
	case "bild":
		return func(tt, s, _, mask *Node) *Node { return BiLD(tt, s, mask, c.BiLDK, 3) }
	case "dbild":
		return func(tt, s, _, mask *Node) *Node {
			return DBiLD(tt, s, mask, DBiLDOptions{Tau: c.Tau, Window: c.Window, KMin: c.KMin, KMax: c.KMax})
		}
	}
	return nil
}

func relClose(got, want, rel float64) bool {
	if math.IsNaN(got) || math.IsInf(got, 0) {
		return false
	}
	return math.Abs(got-want) <= rel*math.Abs(want)+1e-6
}

func TestLossesAgainstReference(t *testing.T) {
	b := backend()
	for _, c := range loadFixtures(t) {
		tData, sData := decodeF32(t, c.TF32), decodeF32(t, c.SF32)
		tT := tensors.FromFlatDataAndDimensions(tData, c.N, c.VT)
		sT := tensors.FromFlatDataAndDimensions(sData, c.N, c.VS)
		labT := tensors.FromFlatDataAndDimensions(c.Labels, c.N)
		maskT := tensors.FromFlatDataAndDimensions(c.Mask, c.N)
		for name, raw := range c.Expected {
			fn := lossFn(name, &c)
			if fn == nil {
				continue
			}
			var want lossExpect
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			e := MustNewExec(b, func(in []*Node) []*Node {
				per := fn(in[0], in[1], in[2], in[3])
				mean := MaskedMean(per, in[3])
				return []*Node{per, mean, Gradient(mean, in[1])[0]}
			})
			out := e.MustExec(tT, sT, labT, maskT)
			per := tensors.MustCopyFlatData[float32](out[0])
			mean := tensors.MustCopyFlatData[float32](out[1])[0]
			grad := tensors.MustCopyFlatData[float32](out[2])
			for r := range c.N {
				if !relClose(float64(per[r]), want.PerPos[r], 1e-5) {
					t.Errorf("%s/%s: position %d: got %.9g, want %.9g", c.Name, name, r, per[r], want.PerPos[r])
				}
			}
			if !relClose(float64(mean), want.Mean, 1e-5) {
				t.Errorf("%s/%s: mean: got %.9g, want %.9g", c.Name, name, mean, want.Mean)
			}
			wantGrad := make([]float64, c.N*c.VS)
			if want.Grad != nil {
				for r := range c.N {
					copy(wantGrad[r*c.VS:], want.Grad[r])
				}
			}
			for _, sp := range want.GradSparse {
				wantGrad[int(sp[0])*c.VS+int(sp[1])] = sp[2]
			}
			maxAbs, maxErr, at := 0.0, 0.0, 0
			for i, w := range wantGrad {
				maxAbs = max(maxAbs, math.Abs(w))
				d := math.Abs(float64(grad[i]) - w)
				if math.IsNaN(float64(grad[i])) {
					d = math.Inf(1)
				}
				if d > maxErr {
					maxErr, at = d, i
				}
			}
			// 1e-37: gradients below float32's normal range (e.g. 1e-243 at 1e30-scale logits) are 0.
			if maxErr > 1e-4*maxAbs+1e-37 {
				t.Errorf("%s/%s: gradient: max error %.3g at [%d,%d] (got %.6g want %.6g), max |grad| %.3g",
					c.Name, name, maxErr, at/c.VS, at%c.VS, grad[at], wantGrad[at], maxAbs)
			}
		}
		// DBiLD terms and knees.
		var terms struct {
			Lt, Ls []float64
			Kt, Ks []int32
		}
		if err := json.Unmarshal(c.Expected["dbild_terms"], &terms); err != nil {
			t.Fatal(err)
		}
		e := MustNewExec(b, func(tt, s, mask *Node) []*Node {
			lt, ls, kt, ks := DBiLDTerms(tt, s, nil, DBiLDOptions{Tau: c.Tau, Window: c.Window, KMin: c.KMin, KMax: c.KMax})
			return []*Node{lt, ls, kt, ks}
		})
		out := e.MustExec(tT, sT, maskT)
		lt, ls := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
		kt, ks := tensors.MustCopyFlatData[int32](out[2]), tensors.MustCopyFlatData[int32](out[3])
		for r := range c.N {
			if kt[r] != terms.Kt[r] || ks[r] != terms.Ks[r] {
				t.Errorf("%s: position %d: knees (k_t, k_s) = (%d, %d), want (%d, %d)", c.Name, r, kt[r], ks[r], terms.Kt[r], terms.Ks[r])
			}
			if !relClose(float64(lt[r]), terms.Lt[r], 1e-5) || !relClose(float64(ls[r]), terms.Ls[r], 1e-5) {
				t.Errorf("%s: position %d: (L_t, L_s) = (%.9g, %.9g), want (%.9g, %.9g)", c.Name, r, lt[r], ls[r], terms.Lt[r], terms.Ls[r])
			}
		}
	}
}

var _ = dtypes.Float32
