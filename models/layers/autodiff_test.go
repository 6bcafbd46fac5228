package layers

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/engine"
)

// refDotGrads is C = DotGeneral(A, B) with one contracting axis and leading batch axes, and
// the gradients of sum(C * w), in plain float64 loops over multi-indices.
func refDotGrads(a []float64, ad []int, ca int, b []float64, bd []int, cb, nb int, w []float64) (da, db []float64) {
	cross := func(d []int, c int) []int {
		var x []int
		for i := nb; i < len(d); i++ {
			if i != c {
				x = append(x, i)
			}
		}
		return x
	}
	xa, xb := cross(ad, ca), cross(bd, cb)
	// Output index order: batch, A's cross axes, B's cross axes.
	var outDims []int
	outDims = append(outDims, ad[:nb]...)
	for _, i := range xa {
		outDims = append(outDims, ad[i])
	}
	for _, i := range xb {
		outDims = append(outDims, bd[i])
	}
	flat := func(dims, idx []int) int {
		f := 0
		for i, d := range dims {
			f = f*d + idx[i]
		}
		return f
	}
	da, db = make([]float64, len(a)), make([]float64, len(b))
	idx := make([]int, len(outDims))
	for {
		for k := 0; k < ad[ca]; k++ {
			ai, bi := make([]int, len(ad)), make([]int, len(bd))
			copy(ai, idx[:nb])
			copy(bi, idx[:nb])
			for j, ax := range xa {
				ai[ax] = idx[nb+j]
			}
			for j, ax := range xb {
				bi[ax] = idx[nb+len(xa)+j]
			}
			ai[ca], bi[cb] = k, k
			wf := w[flat(outDims, idx)]
			da[flat(ad, ai)] += wf * b[flat(bd, bi)]
			db[flat(bd, bi)] += wf * a[flat(ad, ai)]
		}
		i := len(idx) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < outDims[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return
		}
	}
}

// TestDotGeneralGradients checks both operands' gradients of DotGeneral, as the wrapped VJP of
// autodiff.go builds them, against refDotGrads, over the layouts the models use: linear layers
// on [B, L, in] with weights [out, in] or [in, out], the attention's score and output products
// with batch axes, and contracting axes first. It also checks which plan rhsGradient chose, by
// the transposes in the right operand's gradient.
func TestDotGeneralGradients(t *testing.T) {
	cases := []struct {
		name       string
		ad, bd     []int
		ca, cb, nb int
		transposes int // Transpose nodes between B's gradient and the DotGeneral computing it
	}{
		{"linear [out,in]", []int{2, 5, 4}, []int{3, 4}, 2, 1, 0, 1},             // P: dY transposed
		{"linear [in,out]", []int{2, 5, 4}, []int{4, 3}, 2, 0, 0, 1},             // Q: X transposed
		{"scores dK", []int{2, 3, 8, 2}, []int{2, 3, 8, 2}, 3, 3, 2, 2},          // Q: Q, then the output
		{"output dV", []int{2, 3, 8, 8}, []int{2, 3, 8, 2}, 3, 2, 2, 2},          // P: dO, then the output
		{"contract first", []int{4, 5}, []int{4, 3}, 0, 0, 0, 0},                 // Q: as it is
		{"batch, A contracts first", []int{2, 4, 5}, []int{2, 3, 4}, 1, 2, 1, 1}, // Q: the output
	}
	r := rand.New(rand.NewPCG(9, 10))
	size := func(d []int) int {
		n := 1
		for _, x := range d {
			n *= x
		}
		return n
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := randSlice(r, size(c.ad)), randSlice(r, size(c.bd))
			batch := make([]int, c.nb)
			outDims := append([]int{}, c.ad[:c.nb]...)
			for i := range batch {
				batch[i] = i
			}
			for i := c.nb; i < len(c.ad); i++ {
				if i != c.ca {
					outDims = append(outDims, c.ad[i])
				}
			}
			for i := c.nb; i < len(c.bd); i++ {
				if i != c.cb {
					outDims = append(outDims, c.bd[i])
				}
			}
			w := randSlice(r, size(outDims))
			transposes := -1
			exec := MustNewExec(engine.MustBackend(""), func(an, bn, wn *Node) []*Node {
				loss := ReduceAllSum(Mul(DotGeneral(an, []int{c.ca}, batch, bn, []int{c.cb}, batch), wn))
				g := Gradient(loss, an, bn)
				transposes = 0
				x := g[1]
				for ; x.Type() == NodeTypeTranspose; x = x.Inputs()[0] {
					transposes++
				}
				if x.Type() != NodeTypeDotGeneral {
					t.Fatalf("B's gradient ends in a %s, want a DotGeneral (and transposes)", x.Type())
				}
				for _, in := range x.Inputs() {
					if in.Type() == NodeTypeTranspose {
						transposes++
					}
				}
				return g
			})
			res := exec.MustExec(tensors.FromFlatDataAndDimensions(a, c.ad...), tensors.FromFlatDataAndDimensions(b, c.bd...),
				tensors.FromFlatDataAndDimensions(w, outDims...))
			da, db := refDotGrads(a, c.ad, c.ca, b, c.bd, c.cb, c.nb, w)
			for k, want := range [][]float64{da, db} {
				got := tensors.MustCopyFlatData[float64](res[k])
				for i := range want {
					if math.Abs(got[i]-want[i]) > 1e-12 {
						t.Fatalf("d%s[%d] = %g, want %g", []string{"A", "B"}[k], i, got[i], want[i])
					}
				}
			}
			if transposes != c.transposes {
				t.Errorf("B's gradient has %d transposes, want %d", transposes, c.transposes)
			}
		})
	}
}

// TestLinearThroughTransposeWeightGradient: Linear's go-backend form y = x @ Transpose(W). W's
// gradient must equal the reference, and be one product in W's own order: plan P's transpose into
// Transpose(W)'s order and Transpose(W)'s own gradient undo each other and are both skipped
// (cancelTransposePair), leaving only dY's transpose as the product's input.
func TestLinearThroughTransposeWeightGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	ad, wd := []int{2, 5, 4}, []int{3, 4} // x [B, L, in], W [out, in]
	a, wv := randSlice(r, 40), randSlice(r, 12)
	upd := randSlice(r, 30)
	var top *Node
	exec := MustNewExec(engine.MustBackend(""), func(x, w, u *Node) []*Node {
		y := DotGeneral(x, []int{2}, nil, Transpose(w, 0, 1), []int{0}, nil) // [B, L, out]
		g := Gradient(ReduceAllSum(Mul(y, u)), x, w)
		top = g[1]
		return g
	})
	res := exec.MustExec(tensors.FromFlatDataAndDimensions(a, ad...), tensors.FromFlatDataAndDimensions(wv, wd...),
		tensors.FromFlatDataAndDimensions(upd, 2, 5, 3))
	da, dw := refDotGrads(a, ad, 2, wv, wd, 1, 0, upd)
	for k, want := range [][]float64{da, dw} {
		got := tensors.MustCopyFlatData[float64](res[k])
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12 {
				t.Fatalf("d%s[%d] = %g, want %g", []string{"x", "W"}[k], i, got[i], want[i])
			}
		}
	}
	if top.Type() != NodeTypeDotGeneral {
		t.Fatalf("W's gradient ends in a %s, want the DotGeneral itself (no transposes after it)", top.Type())
	}
	n := 0
	for _, in := range top.Inputs() {
		if in.Type() == NodeTypeTranspose {
			n++
		}
	}
	if n != 1 {
		t.Errorf("W's gradient product has %d transposed inputs, want 1 (dY)", n)
	}
}

// TestApplyRotaryProduct: on the go backend ApplyRotary at small sizes takes rotate_half as a
// product with a 0/±1 matrix. Its values and its gradient must equal, bit for bit, the
// slice-and-concatenate form (rotate_half as in transformers), computed here directly.
func TestApplyRotaryProduct(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	const b, l, heads, d = 1, 6, 3, 8
	x, c, s, u := randSlice(r, b*l*heads*d), randSlice(r, b*l*d), randSlice(r, b*l*d), randSlice(r, b*l*heads*d)
	for _, v := range [][]float64{x, c, s, u} { // float32 values held in float64
		for i := range v {
			v[i] = float64(float32(v[i]))
		}
	}
	run := func(product bool) [][]float64 {
		exec := MustNewExec(engine.MustBackend(""), func(xn, cn, sn, un *Node) []*Node {
			var y *Node
			if product {
				y = ApplyRotary(xn, cn, sn)
			} else {
				x1 := SliceAxis(xn, -1, AxisRange(0, d/2))
				x2 := SliceAxis(xn, -1, AxisRange(d/2, d))
				y = Add(Mul(xn, cn), Mul(Concatenate([]*Node{Neg(x2), x1}, -1), sn))
			}
			if product && y.Inputs()[1].Inputs()[0].Type() != NodeTypeDotGeneral {
				t.Fatalf("ApplyRotary at [%d, %d, %d, %d] did not take the product form", b, l, heads, d)
			}
			return []*Node{y, Gradient(ReduceAllSum(Mul(y, un)), xn)[0]}
		})
		res := exec.MustExec(tensors.FromFlatDataAndDimensions(x, b, l, heads, d),
			tensors.FromFlatDataAndDimensions(c, b, l, 1, d), tensors.FromFlatDataAndDimensions(s, b, l, 1, d),
			tensors.FromFlatDataAndDimensions(u, b, l, heads, d))
		return [][]float64{tensors.MustCopyFlatData[float64](res[0]), tensors.MustCopyFlatData[float64](res[1])}
	}
	got, want := run(true), run(false)
	for k, name := range []string{"value", "gradient"} {
		for i := range want[k] {
			if got[k][i] != want[k][i] {
				t.Fatalf("%s[%d] = %v, want %v", name, i, got[k][i], want[k][i])
			}
		}
	}
}
