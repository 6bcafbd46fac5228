package train

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/engine"
)

type adamwFixture struct {
	Hyper struct {
		Beta1, Beta2, Eps float64
		WeightDecay       float64 `json:"weight_decay"`
		MaxGradNorm       float64 `json:"max_grad_norm"`
	}
	Initial map[string][]float64
	Shapes  map[string][]int
	Steps   []struct {
		LR     float64
		Grads  map[string][]float64
		Norm   float64
		Params map[string][]float64
	}
}

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// adamwFixtureAndOptimizer reads testdata/adamw/fixture.json (reference/adamw_ref.py) and the
// AdamW with its hyper-parameters.
func adamwFixtureAndOptimizer(t *testing.T) (adamwFixture, AdamW) {
	t.Helper()
	var fx adamwFixture
	b, err := os.ReadFile("../testdata/adamw/fixture.json")
	if err == nil {
		err = json.Unmarshal(b, &fx)
	}
	if err != nil {
		t.Fatal(err)
	}
	h := fx.Hyper
	return fx, AdamW{Beta1: h.Beta1, Beta2: h.Beta2, Eps: h.Eps, WeightDecay: h.WeightDecay, MaxGradNorm: h.MaxGradNorm}
}

// TestAdamWMatchesPyTorch runs four clipped AdamW steps (reference/adamw_ref.py: torch.optim.AdamW
// with decay / no-decay groups after clip_grad_norm_, float64) through both the one-graph
// Update and the trainer's split path (SumSquares per group, ClipScale, Apply per group).
func TestAdamWMatchesPyTorch(t *testing.T) {
	fx, opt := adamwFixtureAndOptimizer(t)
	names := []string{"norm.weight", "proj.bias", "proj.weight"}
	groups := [][]string{{"proj.weight"}, {"norm.weight", "proj.bias"}}
	be := engine.MustBackend("")
	tensor := func(name string, x []float64) *tensors.Tensor {
		return tensors.FromFlatDataAndDimensions(f32(x), fx.Shapes[name]...)
	}
	for _, split := range []bool{false, true} {
		p, m, v := map[string]*tensors.Tensor{}, map[string]*tensors.Tensor{}, map[string]*tensors.Tensor{}
		for _, n := range names {
			p[n] = tensor(n, fx.Initial[n])
			m[n] = tensor(n, make([]float64, len(fx.Initial[n])))
			v[n] = tensor(n, make([]float64, len(fx.Initial[n])))
		}
		for si, st := range fx.Steps {
			lr, step := tensors.FromScalar(float32(st.LR)), tensors.FromScalar(float32(si+1))
			var norm float64
			if !split {
				k := len(names)
				e := MustNewExec(be, func(in []*Node) []*Node {
					np, nm, nv, norm := opt.Update(names, in[:k], in[k:2*k], in[2*k:3*k], in[3*k:4*k], in[4*k], in[4*k+1])
					return append(append(append(np, nm...), nv...), norm)
				})
				var args []any
				for _, src := range []func(n string) *tensors.Tensor{
					func(n string) *tensors.Tensor { return p[n] }, func(n string) *tensors.Tensor { return tensor(n, st.Grads[n]) },
					func(n string) *tensors.Tensor { return m[n] }, func(n string) *tensors.Tensor { return v[n] }} {
					for _, n := range names {
						args = append(args, src(n))
					}
				}
				out := e.MustExec(append(args, lr, step)...)
				for i, n := range names {
					p[n], m[n], v[n] = out[i], out[k+i], out[2*k+i]
				}
				norm = tensors.ToScalar[float64](out[3*k])
			} else {
				var total float64
				for _, grp := range groups {
					var gs []any
					for _, n := range grp {
						gs = append(gs, tensor(n, st.Grads[n]))
					}
					total += tensors.ToScalar[float64](MustNewExec(be, func(g []*Node) *Node { return SumSquares(g) }).MustExec(gs...)[0])
				}
				norm = math.Sqrt(total)
				scale := tensors.FromScalar(float32(opt.ClipScale(norm)))
				for _, grp := range groups {
					k := len(grp)
					e := MustNewExec(be, func(in []*Node) []*Node {
						np, nm, nv := opt.Apply(grp, in[:k], in[k:2*k], in[2*k:3*k], in[3*k:4*k], in[4*k], in[4*k+1], in[4*k+2])
						return append(append(np, nm...), nv...)
					})
					var args []any
					for _, n := range grp {
						args = append(args, p[n])
					}
					for _, n := range grp {
						args = append(args, tensor(n, st.Grads[n]))
					}
					for _, n := range grp {
						args = append(args, m[n])
					}
					for _, n := range grp {
						args = append(args, v[n])
					}
					out := e.MustExec(append(args, lr, step, scale)...)
					for i, n := range grp {
						p[n], m[n], v[n] = out[i], out[k+i], out[2*k+i]
					}
				}
			}
			if math.Abs(norm-st.Norm) > 1e-6*st.Norm {
				t.Fatalf("split=%v step %d: grad norm %.9g, torch %.9g", split, si+1, norm, st.Norm)
			}
			for _, n := range names {
				got := tensors.MustCopyFlatData[float32](p[n])
				for i, want := range st.Params[n] {
					if math.Abs(float64(got[i])-want) > 2e-6*(1+math.Abs(want)) {
						t.Fatalf("split=%v step %d: %s[%d] = %.8g, torch %.8g", split, si+1, n, i, got[i], want)
					}
				}
			}
		}
	}
}

// SumSquares must not stall on a large gradient: a float32 running sum of 2^25 squares of 1
// stops growing at 2^24.
func TestSumSquaresLargeTensor(t *testing.T) {
	const rows, cols = 1 << 13, 1 << 12
	ones := make([]float32, rows*cols)
	for i := range ones {
		ones[i] = 1
	}
	e := MustNewExec(engine.MustBackend(""), func(g []*Node) *Node { return SumSquares(g) })
	got := tensors.ToScalar[float64](e.MustExec(tensors.FromFlatDataAndDimensions(ones, rows, cols), tensors.FromFlatDataAndDimensions(ones[:5], 5))[0])
	if want := float64(rows*cols + 5); got != want {
		t.Fatalf("SumSquares = %.0f, want %.0f", got, want)
	}
}

func TestBalancedGroups(t *testing.T) {
	g := balancedGroups([]int{5, 100, 7, 60, 40}, 2)
	// 100 -> g0; 60 -> g1; 40 -> g1 (100); 7 -> g0 (ties go low: 100 vs 100); 5 -> g1.
	want := [][]int{{1, 2}, {0, 3, 4}}
	if len(g) != 2 || len(g[0]) != 2 || len(g[1]) != 3 || g[0][0] != want[0][0] || g[0][1] != want[0][1] || g[1][0] != 0 || g[1][1] != 3 || g[1][2] != 4 {
		t.Fatalf("balancedGroups = %v, want %v", g, want)
	}
	if g := balancedGroups([]int{3, 4}, 5); len(g) != 2 {
		t.Fatalf("more groups than parameters: %v", g)
	}
}
