package train

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/engine"
	"github.com/switchkd/switchkd/models/tinyllava"
)

// The host path (sumSquaresHost, ClipScale, applyHost) against torch.optim.AdamW +
// clip_grad_norm_ (reference/adamw_ref.py), as TestAdamWMatchesPyTorch checks the graphs.
func TestHostAdamWMatchesPyTorch(t *testing.T) {
	fx, opt := adamwFixtureAndOptimizer(t)
	names := []string{"norm.weight", "proj.bias", "proj.weight"}
	p, m, v := map[string][]float32{}, map[string][]float32{}, map[string][]float32{}
	rowLen := make([]int, len(names))
	for i, n := range names {
		p[n], m[n], v[n] = f32(fx.Initial[n]), make([]float32, len(fx.Initial[n])), make([]float32, len(fx.Initial[n]))
		d := fx.Shapes[n]
		rowLen[i] = 1
		if len(d) > 1 {
			rowLen[i] = d[len(d)-1]
		}
	}
	for si, st := range fx.Steps {
		grads := make([][]float32, len(names))
		for i, n := range names {
			grads[i] = f32(st.Grads[n])
		}
		norm := math.Sqrt(sumSquaresHost(grads, rowLen))
		if math.Abs(norm-st.Norm) > 1e-6*st.Norm {
			t.Fatalf("step %d: grad norm %.9g, torch %.9g", si+1, norm, st.Norm)
		}
		s := opt.scalars(float32(st.LR), float32(si+1), float32(opt.ClipScale(norm)))
		for i, n := range names {
			applyHost(p[n], grads[i], m[n], v[n], opt.WeightDecay > 0 && Decays(n, len(fx.Shapes[n])), s)
			for j, want := range st.Params[n] {
				if got := p[n][j]; math.Abs(float64(got)-want) > 2e-6*(1+math.Abs(want)) {
					t.Fatalf("step %d: %s[%d] = %.8g, torch %.8g", si+1, n, j, got, want)
				}
			}
		}
	}
}

// The host update is Apply's arithmetic operation for operation: the same bits as the graphs,
// with weight decay and clipping, on tensors large enough to be split across goroutines.
func TestHostAdamWMatchesGraph(t *testing.T) {
	opt := AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 1}
	names := []string{"big.weight", "layer.bias", "post_norm.weight"}
	shapes := [][]int{{1500, 1000}, {37}, {64}} // 1.5M values: two host chunks, cut between rows
	rng := rand.New(rand.NewPCG(7, 7))
	randv := func(n int, s float64) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * s)
		}
		return x
	}
	size := func(d []int) int {
		n := 1
		for _, x := range d {
			n *= x
		}
		return n
	}
	k := len(names)
	hp, hm, hv := make([][]float32, k), make([][]float32, k), make([][]float32, k)
	gp, gm, gv := make([]*tensors.Tensor, k), make([]*tensors.Tensor, k), make([]*tensors.Tensor, k)
	rowLen := make([]int, k)
	for i, d := range shapes {
		hp[i], hm[i], hv[i] = randv(size(d), 0.05), make([]float32, size(d)), make([]float32, size(d))
		gp[i] = tensors.FromFlatDataAndDimensions(append([]float32(nil), hp[i]...), d...)
		gm[i] = tensors.FromFlatDataAndDimensions(make([]float32, size(d)), d...)
		gv[i] = tensors.FromFlatDataAndDimensions(make([]float32, size(d)), d...)
		rowLen[i] = d[len(d)-1]
		if len(d) == 1 {
			rowLen[i] = 1
		}
	}
	be := engine.MustBackend("")
	sumSq := MustNewExec(be, func(g []*Node) *Node { return SumSquares(g) })
	apply := MustNewExec(be, func(in []*Node) []*Node {
		np, nm, nv := opt.Apply(names, in[:k], in[k:2*k], in[2*k:3*k], in[3*k:4*k], in[4*k], in[4*k+1], in[4*k+2])
		return append(append(np, nm...), nv...)
	})
	for step := 1; step <= 3; step++ {
		grads := make([][]float32, k)
		gt := make([]any, k)
		for i, d := range shapes {
			grads[i] = randv(size(d), 0.01*float64(step))
			gt[i] = tensors.FromFlatDataAndDimensions(grads[i], d...)
		}
		hostSum := sumSquaresHost(grads, rowLen)
		graphSum := tensors.ToScalar[float64](sumSq.MustExec(gt...)[0])
		if math.Abs(hostSum-graphSum) > 1e-12*graphSum {
			t.Fatalf("step %d: host sum of squares %.17g, graph %.17g", step, hostSum, graphSum)
		}
		norm := math.Sqrt(hostSum)
		scale := float32(opt.ClipScale(norm))
		if step == 3 && scale >= 1 {
			t.Fatalf("step %d: norm %.3g is not clipped; the test wants clipping", step, norm)
		}
		lr := float32(3e-3 / float64(step))
		s := opt.scalars(lr, float32(step), scale)
		for i, n := range names {
			applyHost(hp[i], grads[i], hm[i], hv[i], Decays(n, len(shapes[i])), s)
		}
		args := make([]any, 0, 4*k+3)
		for _, x := range gp {
			args = append(args, x)
		}
		args = append(args, gt...)
		for _, x := range gm {
			args = append(args, x)
		}
		for _, x := range gv {
			args = append(args, x)
		}
		out := apply.MustExec(append(args, tensors.FromScalar(lr), tensors.FromScalar(float32(step)), tensors.FromScalar(scale))...)
		for i := range names {
			gp[i], gm[i], gv[i] = out[i], out[k+i], out[2*k+i]
			for _, c := range []struct {
				what  string
				host  []float32
				graph *tensors.Tensor
			}{{"param", hp[i], gp[i]}, {"m", hm[i], gm[i]}, {"v", hv[i], gv[i]}} {
				g := tensors.MustCopyFlatData[float32](c.graph)
				for j := range g {
					if math.Float32bits(g[j]) != math.Float32bits(c.host[j]) {
						t.Fatalf("step %d: %s %s[%d]: host %.9g, graph %.9g", step, names[i], c.what, j, c.host[j], g[j])
					}
				}
			}
		}
	}
}

// Like SumSquares, the host sum must not stall at 2^24 on a large gradient.
func TestSumSquaresHostLargeTensor(t *testing.T) {
	const rows, cols = 1 << 13, 1 << 12
	ones := make([]float32, rows*cols)
	for i := range ones {
		ones[i] = 1
	}
	if got, want := sumSquaresHost([][]float32{ones, ones[:5]}, []int{cols, 1}), float64(rows*cols+5); got != want {
		t.Fatalf("sumSquaresHost = %.0f, want %.0f", got, want)
	}
}

// A training run with the host optimizer follows the one with the optimizer graphs (the global
// norm's float64 sums are grouped differently, so only to rounding), and updates only the
// student: parameters the trainer is given may be shared, and are copied before the first
// in-place update.
func TestTrainerHostOptimizerMatchesGraphs(t *testing.T) {
	run := func(graphs bool) ([]Metrics, map[string][]float32, map[string][]float32, map[string][]float32) {
		dir := t.TempDir()
		tr, teacher, student := newTrainer(t, dir, 5, DefaultObjective(), []Module{Vision, Connector, LLM})
		tr.Opt.GraphOptimizer = graphs
		// With the host optimizer the student starts sharing the teacher's (equal) vision
		// tensors, the same objects: an in-place update of the student must not reach the
		// teacher. (The graph path donates the old parameters' buffers, so it cannot share.)
		for n, x := range teacher.Params.T {
			if graphs {
				break
			}
			if _, ok := student.Params.T[n]; ok && student.Params.T[n].Shape().Equal(x.Shape()) && strings.HasPrefix(n, tinyllava.VisionPrefix) {
				student.Params.T[n] = x
			}
		}
		before := snapshot(teacher)
		if err := tr.Run(); err != nil {
			t.Fatal(err)
		}
		if (tr.host == nil) != graphs {
			t.Fatalf("GraphOptimizer=%v: host optimizer in use = %v", graphs, tr.host != nil)
		}
		return readMetrics(t, filepath.Join(dir, "metrics.jsonl")), before, snapshot(teacher), snapshot(student)
	}
	gm, _, _, gs := run(true)
	hm, tBefore, tAfter, hs := run(false)
	for n, x := range tBefore {
		for i := range x {
			if x[i] != tAfter[n][i] {
				t.Fatalf("teacher tensor %s changed at %d during training", n, i)
			}
		}
	}
	for i := range gm {
		a, b := gm[i], hm[i]
		for _, d := range [][2]float64{{a.Total, b.Total}, {a.CE, b.CE}, {a.Align, b.Align}, {a.VSD, b.VSD}, {a.GradNorm, b.GradNorm}} {
			if math.Abs(d[0]-d[1]) > 1e-4*(1+math.Abs(d[0])) {
				t.Fatalf("step %d: graphs %+v\n host %+v", i+1, a, b)
			}
		}
	}
	changed := 0
	for n, x := range gs {
		for i := range x {
			if math.Abs(float64(x[i]-hs[n][i])) > 1e-4*(1+math.Abs(float64(x[i]))) {
				t.Fatalf("%s[%d]: graphs %.7g, host %.7g", n, i, x[i], hs[n][i])
			}
		}
		changed++
	}
	if changed == 0 {
		t.Fatal("no student parameters compared")
	}
}
