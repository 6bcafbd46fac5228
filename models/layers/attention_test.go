package layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/engine"
)

// refAttention is scaled dot-product attention written out in plain float64 loops, the
// reference for Attention: q [B,Sq,H,D], k and v [B,Skv,KVH,D], allowed[b][i][j] (nil: all).
// Query head h reads key/value head h / (H/KVH). A row with no allowed key gets uniform
// weights, as MaskedScore gives.
func refAttention(q, k, v []float64, b, sq, skv, h, kvh, d int, allowed [][][]bool) []float64 {
	out := make([]float64, b*sq*h*d)
	g := h / kvh
	scale := 1 / math.Sqrt(float64(d))
	for bi := 0; bi < b; bi++ {
		for hi := 0; hi < h; hi++ {
			kh := hi / g
			for i := 0; i < sq; i++ {
				s := make([]float64, skv)
				maxS := math.Inf(-1)
				any := false
				for j := 0; j < skv; j++ {
					if allowed != nil && !allowed[bi][i][j] {
						continue
					}
					any = true
					for x := 0; x < d; x++ {
						s[j] += q[((bi*sq+i)*h+hi)*d+x] * k[((bi*skv+j)*kvh+kh)*d+x] * scale
					}
					maxS = math.Max(maxS, s[j])
				}
				p := make([]float64, skv)
				var sum float64
				for j := 0; j < skv; j++ {
					switch {
					case !any:
						p[j] = 1
					case allowed == nil || allowed[bi][i][j]:
						p[j] = math.Exp(s[j] - maxS)
					}
					sum += p[j]
				}
				for j := 0; j < skv; j++ {
					for x := 0; x < d; x++ {
						out[((bi*sq+i)*h+hi)*d+x] += p[j] / sum * v[((bi*skv+j)*kvh+kh)*d+x]
					}
				}
			}
		}
	}
	return out
}

// runAttention runs attend over the float64 inputs (dims: b, sq, skv, h, kvh, d; mask [b, sq, 1,
// skv]), checks its output against refAttention with allowed (nil: no mask) within 1e-12, and
// returns the output followed by the gradients of sum(out * wOut) with respect to q, k and v.
func runAttention(t *testing.T, what string, attend func(q, k, v, mask *Node) *Node, q, k, v []float64,
	mask []bool, wOut []float64, dims [6]int, allowed [][][]bool) []*tensors.Tensor {
	t.Helper()
	b, sq, skv, h, kvh, d := dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]
	exec := MustNewExec(engine.MustBackend(""), func(qn, kn, vn, mn, w *Node) []*Node {
		out := attend(qn, kn, vn, mn)
		return append([]*Node{out}, Gradient(ReduceAllSum(Mul(out, w)), qn, kn, vn)...)
	})
	res := exec.MustExec(
		tensors.FromFlatDataAndDimensions(q, b, sq, h, d),
		tensors.FromFlatDataAndDimensions(k, b, skv, kvh, d),
		tensors.FromFlatDataAndDimensions(v, b, skv, kvh, d),
		tensors.FromFlatDataAndDimensions(mask, b, sq, 1, skv),
		tensors.FromFlatDataAndDimensions(wOut, b, sq, h, d))
	want := refAttention(q, k, v, b, sq, skv, h, kvh, d, allowed)
	got := tensors.MustCopyFlatData[float64](res[0])
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("%s: out[%d] = %.15g, reference %.15g", what, i, got[i], want[i])
		}
	}
	return res
}

func randSlice(r *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = r.NormFloat64()
	}
	return s
}

// TestAttention checks Attention (grouped-query, with a mask that leaves one query row with no
// key at all) and its gradients, whose softmax part is SoftmaxLastAxis's closed form, against
// refAttention and central differences of it, in float64.
//
// With 20 keys the go backend takes the small-matmul layouts of AttentionScores and
// AttentionValues (keys and values laid out [B, KVH, D, Skv]); with 4, the scores keep the
// Einsum form.
func TestAttention(t *testing.T) {
	for _, skv := range []int{4, 20} {
		t.Run(fmt.Sprintf("skv=%d", skv), func(t *testing.T) { testAttention(t, skv) })
	}
}

func testAttention(t *testing.T, skv int) {
	const b, sq, h, kvh, d = 2, 3, 4, 2, 5
	if !goSmall(NewGraph(engine.MustBackend(""), "probe"), b*kvh, (h/kvh)*sq, d, skv) {
		t.Fatal("goSmall changed: these shapes no longer take the small-matmul layouts")
	}
	r := rand.New(rand.NewPCG(1, 2))
	q, k, v := randSlice(r, b*sq*h*d), randSlice(r, b*skv*kvh*d), randSlice(r, b*skv*kvh*d)
	// loss = sum(out * wOut). The row with no allowed key gets weight 0: its uniform output is
	// a rounding artefact (every score drowned by MaskedScore), and its gradient is only the
	// exact-math one of unmasked attention; such rows are padding queries nothing reads.
	wOut := randSlice(r, b*sq*h*d)
	for x := 0; x < h*d; x++ {
		wOut[(1*sq+0)*h*d+x] = 0
	}
	allowed := make([][][]bool, b)
	maskFlat := make([]bool, b*sq*skv)
	for bi := range allowed {
		allowed[bi] = make([][]bool, sq)
		for i := range allowed[bi] {
			allowed[bi][i] = make([]bool, skv)
			for j := range allowed[bi][i] {
				ok := r.IntN(3) > 0 && !(bi == 1 && i == 0) // batch 1, row 0: nothing allowed
				allowed[bi][i][j] = ok
				maskFlat[(bi*sq+i)*skv+j] = ok
			}
		}
	}
	for _, masked := range []bool{false, true} {
		al := allowed
		if !masked {
			al = nil
		}
		res := runAttention(t, fmt.Sprintf("masked=%v", masked), func(qn, kn, vn, mask *Node) *Node {
			var bias *Node
			if masked {
				bias = MaskBias(mask)
			}
			return Attention(qn, kn, vn, bias, false)
		}, q, k, v, maskFlat, wOut, [6]int{b, sq, skv, h, kvh, d}, al)
		loss := func() float64 {
			o := refAttention(q, k, v, b, sq, skv, h, kvh, d, al)
			var s float64
			for i := range o {
				s += o[i] * wOut[i]
			}
			return s
		}
		for gi, x := range [][]float64{q, k, v} {
			grad := tensors.MustCopyFlatData[float64](res[1+gi])
			for i := range x {
				const eps = 1e-6
				x0 := x[i]
				x[i] = x0 + eps
				up := loss()
				x[i] = x0 - eps
				down := loss()
				x[i] = x0
				fd := (up - down) / (2 * eps)
				if math.Abs(grad[i]-fd) > 1e-7*(1+math.Abs(fd)) {
					t.Fatalf("masked=%v: d loss / d %s[%d] = %.10g, central difference %.10g", masked, "qkv"[gi:gi+1], i, grad[i], fd)
				}
			}
		}
	}
}

// TestLinearGradientHasNoIdentityTranspose checks the DotGeneral gradient wrapper of
// autodiff.go: the weight gradient of a linear layer is the matmul itself, not an identity
// Transpose copy of it, and equals the reference dW = dy^T x (here dy = wOut).
func TestLinearGradientHasNoIdentityTranspose(t *testing.T) {
	const m, k, n = 3, 4, 5
	r := rand.New(rand.NewPCG(3, 4))
	x, w, wOut := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, m*n)
	var gradType NodeType
	exec := MustNewExec(engine.MustBackend(""), func(xn, wn, wo *Node) []*Node {
		loss := ReduceAllSum(Mul(Linear(xn, wn, nil), wo))
		grads := Gradient(loss, xn, wn)
		gradType = grads[1].Type()
		return grads
	})
	res := exec.MustExec(tensors.FromFlatDataAndDimensions(x, m, k), tensors.FromFlatDataAndDimensions(w, n, k),
		tensors.FromFlatDataAndDimensions(wOut, m, n))
	if gradType == NodeTypeTranspose {
		t.Errorf("the weight gradient is still a Transpose node")
	}
	dx, dw := tensors.MustCopyFlatData[float64](res[0]), tensors.MustCopyFlatData[float64](res[1])
	checkSums(t, "dx", dx, m, k, n, func(i, c, o int) float64 { return wOut[i*n+o] * w[o*k+c] })
	checkSums(t, "dW", dw, n, k, m, func(o, c, i int) float64 { return wOut[i*n+o] * x[i*k+c] })
}

// TestLinearSmallLayout checks Linear where the go backend runs it as x @ Transpose(W) (more
// rows than inputs, more than 16 outputs): the output and both gradients against plain sums,
// and that the gradient of x reads W itself (lhsGradientThroughTranspose), not the transpose.
func TestLinearSmallLayout(t *testing.T) {
	const m, k, n = 20, 4, 18
	r := rand.New(rand.NewPCG(5, 6))
	x, w, bias, wOut := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, n), randSlice(r, m*n)
	be := engine.MustBackend("")
	if !goSmallInputOutputs(NewGraph(be, "probe"), m, k, n) {
		t.Fatal("goSmallInputOutputs changed: this case no longer takes the transposed-weight layout")
	}
	dxReadsW := false
	exec := MustNewExec(be, func(xn, wn, bn, wo *Node) []*Node {
		y := Linear(xn, wn, bn)
		grads := Gradient(ReduceAllSum(Mul(y, wo)), xn, wn)
		dx := grads[0]
		for dx.Type() == NodeTypeReshape || dx.Type() == NodeTypeTranspose {
			dx = dx.Inputs()[0]
		}
		dxReadsW = dx.Type() == NodeTypeDotGeneral && dx.Inputs()[1] == wn
		return append([]*Node{y}, grads...)
	})
	res := exec.MustExec(tensors.FromFlatDataAndDimensions(x, m, k), tensors.FromFlatDataAndDimensions(w, n, k),
		tensors.FromFlatDataAndDimensions(bias, n), tensors.FromFlatDataAndDimensions(wOut, m, n))
	if !dxReadsW {
		t.Errorf("the gradient of x is not a DotGeneral reading W as it is")
	}
	y, dx, dw := tensors.MustCopyFlatData[float64](res[0]), tensors.MustCopyFlatData[float64](res[1]), tensors.MustCopyFlatData[float64](res[2])
	checkSums(t, "y", y, m, n, k+1, func(i, o, c int) float64 {
		if c == k {
			return bias[o]
		}
		return x[i*k+c] * w[o*k+c]
	})
	checkSums(t, "dx", dx, m, k, n, func(i, c, o int) float64 { return wOut[i*n+o] * w[o*k+c] })
	checkSums(t, "dW", dw, n, k, m, func(o, c, i int) float64 { return wOut[i*n+o] * x[i*k+c] })
}

// TestLinearTransposedTwin checks Linear with a prepared transpose of W (SetTransposed), for
// shapes where the go backend would transpose W itself (more rows than inputs) and where it would
// not (fewer rows): the output and x's gradient against plain sums, the forward product reading
// the prepared input, x's gradient reading W, and no Transpose node anywhere in the graph.
func TestLinearTransposedTwin(t *testing.T) {
	for _, c := range [][3]int{{20, 4, 18}, {3, 40, 24}} {
		m, k, n := c[0], c[1], c[2]
		r := rand.New(rand.NewPCG(7, uint64(m)))
		x, w, bias, wOut := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, n), randSlice(r, m*n)
		wT := make([]float64, k*n)
		for o := range n {
			for i := range k {
				wT[i*n+o] = w[o*k+i]
			}
		}
		var fwdReadsTwin, dxReadsW bool
		transposes := -1
		exec := MustNewExec(engine.MustBackend(""), func(xn, wn, wtn, bn, wo *Node) []*Node {
			SetTransposed(wn, wtn)
			y := Linear(xn, wn, bn)
			for _, nd := range xn.Graph().Nodes() {
				if nd.Type() == NodeTypeDotGeneral && nd.Inputs()[1] == wtn {
					fwdReadsTwin = true
				}
			}
			dx := Gradient(ReduceAllSum(Mul(y, wo)), xn)[0]
			for dx.Type() == NodeTypeReshape {
				dx = dx.Inputs()[0]
			}
			dxReadsW = dx.Type() == NodeTypeDotGeneral && dx.Inputs()[1] == wn
			transposes = CountReachable([]*Node{y, dx}, isType(NodeTypeTranspose))
			return []*Node{y, dx}
		})
		res := exec.MustExec(tensors.FromFlatDataAndDimensions(x, m, k), tensors.FromFlatDataAndDimensions(w, n, k),
			tensors.FromFlatDataAndDimensions(wT, k, n), tensors.FromFlatDataAndDimensions(bias, n),
			tensors.FromFlatDataAndDimensions(wOut, m, n))
		if !fwdReadsTwin || !dxReadsW || transposes != 0 {
			t.Errorf("%v: forward reads the prepared transpose %v, dx reads W %v, %d Transpose nodes (want true, true, 0)",
				c, fwdReadsTwin, dxReadsW, transposes)
		}
		y, dx := tensors.MustCopyFlatData[float64](res[0]), tensors.MustCopyFlatData[float64](res[1])
		checkSums(t, "y", y, m, n, k+1, func(i, o, c int) float64 {
			if c == k {
				return bias[o]
			}
			return x[i*k+c] * w[o*k+c]
		})
		checkSums(t, "dx", dx, m, k, n, func(i, c, o int) float64 { return wOut[i*n+o] * w[o*k+c] })
	}
}

// TestLinearsWFused checks LinearsW with a prepared fused transpose (SetFusedTransposed) of three
// weights (biases included) against plain sums: each output and x's gradient through all three,
// the forward as one product reading the fused transpose, x's gradient as one product reading
// the fused weights, and neither a Pad nor a Transpose that the results depend on (the slices'
// zero-padded gradients became one concatenation, padsToConcat).
func TestLinearsWFused(t *testing.T) {
	const m, k = 6, 5
	outs := []int{20, 17, 17}
	r := rand.New(rand.NewPCG(11, 12))
	x := randSlice(r, m*k)
	tot := 0
	for _, o := range outs {
		tot += o
	}
	ws, bs, wOut := make([][]float64, 3), make([][]float64, 3), make([][]float64, 3)
	fused, fusedT := make([]float64, tot*k), make([]float64, k*tot)
	at := 0
	for i, o := range outs {
		ws[i], bs[i], wOut[i] = randSlice(r, o*k), randSlice(r, o), randSlice(r, m*o)
		for a := range o {
			for c := range k {
				fused[(at+a)*k+c] = ws[i][a*k+c]
				fusedT[c*tot+at+a] = ws[i][a*k+c]
			}
		}
		at += o
	}
	var products, pads, transposes int
	var dxReadsFused bool
	exec := MustNewExec(engine.MustBackend(""), func(in []*Node) []*Node {
		xn, fT, f := in[0], in[1], in[2]
		names := []string{"a", "b", "c"}
		idx := map[string]*Node{}
		for i, n := range names {
			idx[n+".weight"], idx[n+".bias"] = in[3+i], in[6+i]
		}
		SetFusedTransposed([]*Node{idx["a.weight"], idx["b.weight"], idx["c.weight"]}, fT, f)
		ys := LinearsW(func(name string) *Node { return idx[name] }, xn, true, names...)
		for _, nd := range xn.Graph().Nodes() {
			if nd.Type() == NodeTypeDotGeneral {
				products++
			}
		}
		loss := ReduceAllSum(Mul(ys[0], in[9]))
		loss = Add(loss, ReduceAllSum(Mul(ys[1], in[10])))
		loss = Add(loss, ReduceAllSum(Mul(ys[2], in[11])))
		dx := Gradient(loss, xn)[0]
		for dx.Type() == NodeTypeReshape {
			dx = dx.Inputs()[0]
		}
		dxReadsFused = dx.Type() == NodeTypeDotGeneral && dx.Inputs()[1] == f
		res := append(ys, dx)
		pads, transposes = CountReachable(res, isType(NodeTypePad)), CountReachable(res, isType(NodeTypeTranspose))
		return res
	})
	args := []any{tensors.FromFlatDataAndDimensions(x, m, k), tensors.FromFlatDataAndDimensions(fusedT, k, tot),
		tensors.FromFlatDataAndDimensions(fused, tot, k)}
	for i, o := range outs {
		args = append(args, tensors.FromFlatDataAndDimensions(ws[i], o, k))
	}
	for i, o := range outs {
		args = append(args, tensors.FromFlatDataAndDimensions(bs[i], o))
	}
	for i, o := range outs {
		args = append(args, tensors.FromFlatDataAndDimensions(wOut[i], m, o))
	}
	res := exec.MustExec(args...)
	if products != 1 || !dxReadsFused || pads != 0 || transposes != 0 {
		t.Errorf("forward products %d (want 1), dx reads the fused weights %v, %d pads and %d transposes (want 0)",
			products, dxReadsFused, pads, transposes)
	}
	for i, o := range outs {
		y := tensors.MustCopyFlatData[float64](res[i])
		checkSums(t, fmt.Sprintf("y%d", i), y, m, o, k+1, func(a, b, c int) float64 {
			if c == k {
				return bs[i][b]
			}
			return x[a*k+c] * ws[i][b*k+c]
		})
	}
	dx := tensors.MustCopyFlatData[float64](res[3])
	checkSums(t, "dx", dx, m, k, 3*tot, func(a, c, j int) float64 {
		i, b := j/tot, j%tot
		if b >= outs[i] {
			return 0
		}
		return wOut[i][a*outs[i]+b] * ws[i][b*k+c]
	})
}

// isType matches nodes of one type (CountReachable).
func isType(typ NodeType) func(*Node) bool { return func(n *Node) bool { return n.Type() == typ } }

// checkSums checks got [rows, cols] against sum_j term(r, c, j), j < inner.
func checkSums(t *testing.T, name string, got []float64, rows, cols, inner int, term func(r, c, j int) float64) {
	t.Helper()
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			var want float64
			for j := 0; j < inner; j++ {
				want += term(r, c, j)
			}
			if math.Abs(got[r*cols+c]-want) > 1e-12 {
				t.Fatalf("%s[%d,%d] = %g, want %g", name, r, c, got[r*cols+c], want)
			}
		}
	}
}

// TestAttentionBlocks checks the query-row blocks of Attention: with and without a causal
// mask (combined with padding, as batched prefill builds it), cut into 1 to 4 blocks, the
// output matches refAttention and the gradients match the one-block attention's, in float64.
func TestAttentionBlocks(t *testing.T) {
	const b, l, h, kvh, d = 2, 9, 4, 2, 3
	r := rand.New(rand.NewPCG(5, 6))
	q, k, v := randSlice(r, b*l*h*d), randSlice(r, b*l*kvh*d), randSlice(r, b*l*kvh*d)
	wOut := randSlice(r, b*l*h*d)
	// Batch row 1 is left-padded by 2: its first two keys are hidden from the later queries
	// (a padding query still sees itself).
	allowed := make([][][]bool, b)
	maskFlat := make([]bool, b*l*l)
	for bi := range allowed {
		allowed[bi] = make([][]bool, l)
		for i := range allowed[bi] {
			allowed[bi][i] = make([]bool, l)
			for j := 0; j <= i; j++ {
				ok := bi == 0 || j >= 2 || j == i
				allowed[bi][i][j] = ok
				maskFlat[(bi*l+i)*l+j] = ok
			}
		}
	}
	for _, causal := range []bool{false, true} {
		al := allowed
		if !causal {
			al = nil
		}
		var ref []*tensors.Tensor
		for parts := 1; parts <= 4; parts++ {
			res := runAttention(t, fmt.Sprintf("causal=%v parts=%d", causal, parts), func(qn, kn, vn, mask *Node) *Node {
				var bias *Node
				if causal {
					bias = MaskBias(mask)
				}
				return attentionBlocks(qn, kn, vn, bias, causal, parts)
			}, q, k, v, maskFlat, wOut, [6]int{b, l, l, h, kvh, d}, al)
			if parts == 1 {
				ref = res
				continue
			}
			for gi := 1; gi < 4; gi++ {
				a, g := tensors.MustCopyFlatData[float64](ref[gi]), tensors.MustCopyFlatData[float64](res[gi])
				for i := range a {
					if math.Abs(a[i]-g[i]) > 1e-12*(1+math.Abs(a[i])) {
						t.Fatalf("causal=%v parts=%d: gradient %s[%d] = %.15g, one block %.15g", causal, parts, "qkv"[gi-1:gi], i, g[i], a[i])
					}
				}
			}
		}
	}
	if attentionParts(798, true) != 4 || attentionParts(729, false) != 2 || attentionParts(1, true) != 1 {
		t.Fatal("attentionParts changed: update the comment on Attention and docs/BENCHMARKS.md")
	}
}

// TestScatterIntoSum checks the tied-weight gradient rewrite of autodiff.go on a tied
// embedding: W [V, D] is read by a Gather (with a repeated id) and by a logits matmul. After
// the rewrite the gradient is a single ScatterSum into the matmul's gradient, and it equals the
// analytic dW[v] = sum_{i: ids_i = v} a_i + sum_r b[r, v] h[r] in float64.
func TestScatterIntoSum(t *testing.T) {
	const v, d, n, rows = 7, 3, 4, 2
	r := rand.New(rand.NewPCG(7, 8))
	w, a, h, b := randSlice(r, v*d), randSlice(r, n*d), randSlice(r, rows*d), randSlice(r, rows*v)
	ids := []int32{5, 1, 5, 0}
	var before, after NodeType
	exec := MustNewExec(engine.MustBackend(""), func(wn, an, hn, bn, idn *Node) *Node {
		emb := Gather(wn, InsertAxes(idn, -1))
		logits := Linear(hn, wn, nil)
		loss := Add(ReduceAllSum(Mul(emb, an)), ReduceAllSum(Mul(logits, bn)))
		g := Gradient(loss, wn)[0]
		before = g.Type()
		g = ScatterIntoSum(g)
		after = g.Type()
		return g
	})
	res := exec.MustExec(tensors.FromFlatDataAndDimensions(w, v, d), tensors.FromFlatDataAndDimensions(a, n, d),
		tensors.FromFlatDataAndDimensions(h, rows, d), tensors.FromFlatDataAndDimensions(b, rows, v),
		tensors.FromFlatDataAndDimensions(ids, n))
	if before != NodeTypeAdd || after != NodeTypeScatterSum {
		t.Fatalf("gradient node %s rewritten to %s, want Add -> ScatterSum", before, after)
	}
	got := tensors.MustCopyFlatData[float64](res[0])
	for tok := 0; tok < v; tok++ {
		for c := 0; c < d; c++ {
			var want float64
			for i, id := range ids {
				if int(id) == tok {
					want += a[i*d+c]
				}
			}
			for j := 0; j < rows; j++ {
				want += b[j*v+tok] * h[j*d+c]
			}
			if math.Abs(got[tok*d+c]-want) > 1e-12 {
				t.Fatalf("dW[%d,%d] = %g, want %g", tok, c, got[tok*d+c], want)
			}
		}
	}
	// Anything else is left as it is.
	MustNewExec(engine.MustBackend(""), func(x *Node) *Node {
		s := Add(x, x)
		if ScatterIntoSum(s) != s {
			t.Errorf("a plain Add was rewritten")
		}
		return s
	}).MustExec(tensors.FromFlatDataAndDimensions([]float64{1, 2}, 2))
}

// TestSumLastAxis checks SumLastAxis (on the go backend a product with ones) against sums in
// float64 on the host, with and without the kept axis, in float32 and float64, and its gradient
// (every entry gets its row's upstream gradient).
func TestSumLastAxis(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const a, b, c = 3, 5, 37
	x := randSlice(r, a*b*c)
	wOut := randSlice(r, a*b)
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		for _, keep := range []bool{false, true} {
			exec := MustNewExec(engine.MustBackend(""), func(xn, wn *Node) []*Node {
				xc := ConvertDType(xn, dt)
				s := SumLastAxis(xc, keep)
				if keep && s.Rank() != 3 || !keep && s.Rank() != 2 {
					t.Fatalf("keep=%v: SumLastAxis gave shape %s", keep, s.Shape())
				}
				s = Reshape(s, a, b)
				loss := ReduceAllSum(Mul(s, ConvertDType(wn, dt)))
				return []*Node{ConvertDType(s, dtypes.Float64), ConvertDType(Gradient(loss, xc)[0], dtypes.Float64)}
			})
			res := exec.MustExec(tensors.FromFlatDataAndDimensions(x, a, b, c), tensors.FromFlatDataAndDimensions(wOut, a, b))
			got, grad := tensors.MustCopyFlatData[float64](res[0]), tensors.MustCopyFlatData[float64](res[1])
			tol := 1e-12
			if dt == dtypes.Float32 {
				tol = 1e-5
			}
			for i := 0; i < a*b; i++ {
				var want float64
				for k := 0; k < c; k++ {
					want += x[i*c+k]
					if g := grad[i*c+k]; math.Abs(g-wOut[i]) > tol*(1+math.Abs(wOut[i])) {
						t.Fatalf("%s keep=%v: gradient [%d,%d] = %g, want %g", dt, keep, i, k, g, wOut[i])
					}
				}
				if math.Abs(got[i]-want) > tol*(1+math.Abs(want)) {
					t.Fatalf("%s keep=%v: sum %d = %.15g, want %.15g", dt, keep, i, got[i], want)
				}
			}
		}
	}
}
