package layers

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/compute/support/xslices"
	. "github.com/gomlx/gomlx/core/graph"
)

// GoMLX's gradient of a DotGeneral ends every operand's gradient with a TransposeAllAxes back
// to the operand's axis order, also when that permutation is the identity, and the go backend
// executes an identity Transpose as a full element-by-element copy. For a linear layer that is
// a copy of every weight gradient through the generic transpose iterator, each step: for the
// tied 151936 x 896 embedding of Qwen2.5-0.5B alone, ~1 s per use on this machine.
//
// init wraps the registered DotGeneral gradient (GoMLX's VJPRegistration is documented as
// replaceable) so that an identity Transpose at the end of an operand's gradient is skipped,
// and so that the right operand's gradient is built as rhsGradient plans it (see there).
// The values are unchanged; replaced nodes are left unused and the backend never runs them.
func init() {
	orig := VJPRegistration[NodeTypeDotGeneral]
	VJPRegistration[NodeTypeDotGeneral] = func(node *Node, vjpOutputs []*Node, outputShape shapes.Shape) []*Node {
		if len(vjpOutputs) == 1 && vjpOutputs[0] != nil {
			vjpOutputs = []*Node{padsToConcat(vjpOutputs[0])}
		}
		grads := orig(node, vjpOutputs, outputShape)
		if len(grads) == 2 && len(vjpOutputs) == 1 {
			if g := lhsGradientThroughTranspose(node, vjpOutputs[0]); g != nil {
				grads[0] = g
			}
			if g := rhsGradient(node, vjpOutputs[0]); g != nil {
				grads[1] = g
			}
		}
		for i, g := range grads {
			grads[i] = skipIdentityTranspose(g)
		}
		return grads
	}
	// A Transpose's gradient is the inverse transpose of the incoming one. When the incoming one
	// is itself a transpose that the inverse undoes, both are skipped: Linear's weight on the go
	// backend is Transpose(W), and rhsGradient may build its gradient as a product in W's own
	// order followed by a transpose into Transpose(W)'s order (plan P), which this undoes.
	origT := VJPRegistration[NodeTypeTranspose]
	VJPRegistration[NodeTypeTranspose] = func(node *Node, vjpOutputs []*Node, outputShape shapes.Shape) []*Node {
		grads := origT(node, vjpOutputs, outputShape)
		for i, g := range grads {
			grads[i] = cancelTransposePair(g)
		}
		return grads
	}
}

var padAxisRE = regexp.MustCompile(`\{Start:(-?\d+) End:(-?\d+) Interior:(-?\d+)\}`)

// padsToConcat returns Concatenate(parts, axis) when v is a sum of zero Pads of the parts that
// tile one axis (under a Reshape that keeps v's last axis, the Reshape of that), else v. It is
// how GoMLX builds the gradient of outputs sliced from one product (LinearsW's fused q, k, v):
// each slice's gradient padded with zeros to the full width, then summed. A concatenation is
// the same values (up to the sign of zeros) and one copy instead of a pass per part over the
// whole width; the go backend's pads and broadcasting sums walk an index iterator per value.
func padsToConcat(v *Node) *Node {
	if v.Type() == NodeTypeReshape && len(v.Inputs()) == 1 {
		in := v.Inputs()[0]
		if in.Rank() == 0 || v.Rank() == 0 || in.Shape().Dimensions[in.Rank()-1] != v.Shape().Dimensions[v.Rank()-1] {
			return v
		}
		if c := padsToConcat(in); c != in {
			return Reshape(c, v.Shape().Dimensions...)
		}
		return v
	}
	if v.Type() != NodeTypeAdd {
		return v
	}
	var leaves []*Node
	var collect func(n *Node) bool
	collect = func(n *Node) bool {
		switch {
		case n.Type() == NodeTypeAdd && len(n.Inputs()) == 2 && n.Shape().Equal(v.Shape()):
			return collect(n.Inputs()[0]) && collect(n.Inputs()[1])
		case n.Type() == NodeTypePad && len(n.Inputs()) == 2 && n.Shape().Equal(v.Shape()):
			leaves = append(leaves, n)
			return true
		}
		return false
	}
	if !collect(v) || len(leaves) < 2 {
		return v
	}
	type part struct {
		start int
		x     *Node
	}
	parts := make([]part, len(leaves))
	axis := -1
	for i, leaf := range leaves {
		fill := leaf.Inputs()[1]
		if fill.Type() != NodeTypeConstant || fill.Rank() != 0 || !strings.Contains(fill.String(), "): 0)") {
			return v
		}
		cfg := padAxisRE.FindAllStringSubmatch(leaf.String(), -1)
		if len(cfg) != v.Rank() {
			return v
		}
		padded := -1
		for ax, m := range cfg {
			start, _ := strconv.Atoi(m[1])
			end, _ := strconv.Atoi(m[2])
			if m[3] != "0" || start < 0 || end < 0 {
				return v
			}
			if start == 0 && end == 0 {
				continue
			}
			if padded >= 0 {
				return v
			}
			padded, parts[i] = ax, part{start, leaf.Inputs()[0]}
		}
		if padded < 0 || (axis >= 0 && padded != axis) {
			return v
		}
		axis = padded
	}
	slices.SortFunc(parts, func(a, b part) int { return a.start - b.start })
	xs := make([]*Node, len(parts))
	at := 0
	for i, p := range parts {
		if p.start != at {
			return v
		}
		at += p.x.Shape().Dimensions[axis]
		xs[i] = p.x
	}
	if at != v.Shape().Dimensions[axis] {
		return v
	}
	return Concatenate(xs, axis)
}

// cancelTransposePair returns u when x = Transpose(Transpose(u, p), q) and the two permutations
// undo each other (p[q[i]] == i), else x.
func cancelTransposePair(x *Node) *Node {
	if x == nil || x.Type() != NodeTypeTranspose || len(x.Inputs()) != 1 {
		return x
	}
	y := x.Inputs()[0]
	if y.Type() != NodeTypeTranspose || len(y.Inputs()) != 1 {
		return x
	}
	q, ok1 := transposePermutation(x)
	p, ok2 := transposePermutation(y)
	if !ok1 || !ok2 || len(p) != len(q) {
		return x
	}
	for i := range q {
		if p[q[i]] != i {
			return x
		}
	}
	u := y.Inputs()[0]
	if !u.Shape().Equal(x.Shape()) {
		return x
	}
	return u
}

// undoesTranspose reports whether b is a Transpose whose gradient (the inverse permutation)
// undoes perm: a gradient built in B's order by TransposeAllAxes(g, perm...) is then g itself
// after b's gradient (cancelTransposePair).
func undoesTranspose(b *Node, perm []int) bool {
	if b.Type() != NodeTypeTranspose || len(b.Inputs()) != 1 {
		return false
	}
	pb, ok := transposePermutation(b)
	if !ok || len(pb) != len(perm) {
		return false
	}
	// Gradient in B's order: gB[i] = g[perm[i]]; b's gradient: gW[j] = gB[inv(pb)[j]].
	inv := make([]int, len(pb))
	for to, from := range pb {
		inv[from] = to
	}
	for j := range inv {
		if perm[inv[j]] != j {
			return false
		}
	}
	return true
}

var permutationRE = regexp.MustCompile(`permutation=\[([0-9 ]*)\]`)

// skipIdentityTranspose returns x's input when x is a Transpose with the identity
// permutation, else x. GoMLX does not export a Transpose node's permutation, so it is read
// from the node's description; anything unexpected keeps x (always correct, only slower).
func skipIdentityTranspose(x *Node) *Node {
	if x == nil || x.Type() != NodeTypeTranspose || len(x.Inputs()) != 1 {
		return x
	}
	in := x.Inputs()[0]
	if !in.Shape().Equal(x.Shape()) {
		return x
	}
	perm, ok := transposePermutation(x)
	if !ok {
		return x
	}
	for i, p := range perm {
		if p != i {
			return x
		}
	}
	return in
}

// ScatterIntoSum rewrites a gradient of the form Add(x, ScatterSum(Zeros, indices, updates))
// (either order, through nested Adds) as ScatterSum(x, indices, updates). That is how GoMLX
// accumulates the gradient of a weight read both by a Gather and by other ops: the tied
// embedding of Qwen2.5, whose Gather gradient is a scatter into a fresh zero-filled
// vocabulary-sized buffer that is then added to the LM head's gradient. The rewrite scatters
// the few embedding rows straight into the LM head's gradient instead: on the pure-Go backend
// that saves a 151936 x 896 single-threaded fill and add, ~1.2 CPU-s of a Qwen2.5-0.5B-shaped
// training step (docs/BENCHMARKS.md). The sum is the same,
// up to the order of float additions; the replaced nodes are left unused and never run.
func ScatterIntoSum(g *Node) *Node {
	if g == nil || g.Type() != NodeTypeAdd || len(g.Inputs()) != 2 {
		return g
	}
	a, b := g.Inputs()[0], g.Inputs()[1]
	for _, p := range [][2]*Node{{a, b}, {b, a}} {
		x, s := p[0], p[1]
		if s.Type() != NodeTypeScatterSum || len(s.Inputs()) != 3 || !isZeros(s.Inputs()[0]) ||
			!x.Shape().Equal(g.Shape()) || !s.Shape().Equal(g.Shape()) {
			continue
		}
		return ScatterSum(ScatterIntoSum(x), s.Inputs()[1], s.Inputs()[2], false, false)
	}
	return g
}

// isZeros reports whether x is a broadcast (possibly reshaped) of a constant scalar zero.
func isZeros(x *Node) bool {
	for x.Type() == NodeTypeBroadcastInDim || x.Type() == NodeTypeReshape {
		if len(x.Inputs()) != 1 {
			return false
		}
		x = x.Inputs()[0]
	}
	if x.Type() != NodeTypeConstant || !x.Shape().IsScalar() {
		return false
	}
	c := x.ConstantValue()
	if c == nil {
		return false
	}
	switch v := c.Value().(type) {
	case float32:
		return v == 0
	case float64:
		return v == 0
	}
	return false
}

// The right operand's gradient of C = DotGeneral(A, B) contracts the output gradient dC
// [batch, crossA..., crossB...] with A over A's cross axes, which sit in the middle of dC.
// GoMLX builds it as DotGeneral(dC, A) contracting those axes, a layout the go backend's
// matmul does not take (the left operand must contract its last axes), so the backend
// transposes both dC and A first, through its generic element-by-element transpose. For a
// weight gradient dW = dY^T X both are activation-sized; in the attention's dK = dS^T Q, dS is
// the score tensor. rhsGradient builds the same product with one of two layouts the matmul
// takes as they are, whichever moves fewer values:
//
//	P: transpose dC to [batch, crossB..., crossA...], then DotGeneral(dC', A) -> [batch, crossB..., cA]
//	Q: move A's contracting axis first, then DotGeneral(A', dC) -> [batch, cA, crossB...]
//
// followed by a transpose into B's axis order where it differs. It handles one contracting axis
// per operand, leading batch axes, contracting axes at either end of the non-batch axes, one
// float dtype and the default config; anything else returns nil (GoMLX's gradient is kept).
func rhsGradient(node, v *Node) *Node {
	d, ok := parseDotGeneral(node)
	if !ok {
		return nil
	}
	a, b := node.Inputs()[0], node.Inputs()[1]
	if !a.DType().IsFloat() || b.DType() != a.DType() || v.DType() != a.DType() {
		return nil
	}
	nb := len(d.lhsBatch)
	if len(d.lhsContracting) != 1 || len(d.rhsContracting) != 1 || len(d.rhsBatch) != nb {
		return nil
	}
	for i := range nb {
		if d.lhsBatch[i] != i || d.rhsBatch[i] != i {
			return nil
		}
	}
	ra, rb := a.Rank(), b.Rank()
	ca, cb := d.lhsContracting[0], d.rhsContracting[0]
	if (ca != nb && ca != ra-1) || (cb != nb && cb != rb-1) {
		return nil
	}
	nxa, nxb := ra-nb-1, rb-nb-1 // cross axes of A and of B
	if nxa == 0 || nxb == 0 {
		return nil
	}
	// Sizes moved by each plan's transposes (the matmuls are the same). P's last transpose is
	// free when b is a Transpose whose own gradient undoes it (Linear's Transpose(W)).
	sizeV, sizeA, sizeB := v.Shape().Size(), a.Shape().Size(), b.Shape().Size()
	iota := xslices.Iota[int]
	batch := iota(0, nb)
	permP := slices.Concat(batch, []int{nb + nxb}, iota(nb, nxb)) // P's last transpose (cb == nb)
	costP, costQ := sizeV, 0
	if cb == nb && !undoesTranspose(b, permP) {
		costP += sizeB
	}
	if ca != nb {
		costQ += sizeA
	}
	if cb != nb {
		costQ += sizeB
	}
	crossA := iota(nb, nxa) // A's cross axes, in A
	if ca == nb {
		crossA = iota(nb+1, nxa)
	}
	var g *Node
	if costP <= costQ {
		// dC' = [batch, crossB..., crossA...]
		vt := TransposeAllAxes(v, slices.Concat(batch, iota(nb+nxa, nxb), iota(nb, nxa))...)
		g = DotGeneral(vt, iota(nb+nxb, nxa), batch, a, crossA, batch) // [batch, crossB..., cA]
		if cb == nb {
			g = TransposeAllAxes(g, permP...)
		}
	} else {
		at := a
		if ca != nb {
			at = TransposeAllAxes(a, slices.Concat(batch, []int{ca}, iota(nb, nxa))...)
		}
		g = DotGeneral(at, iota(nb+1, nxa), batch, v, iota(nb, nxa), batch) // [batch, cA, crossB...]
		if cb != nb {
			g = TransposeAllAxes(g, slices.Concat(batch, iota(nb+1, nxb), []int{nb})...)
		}
	}
	if !g.Shape().Equal(b.Shape()) {
		return nil
	}
	return g
}

// lhsGradientThroughTranspose handles C = DotGeneral(A, Transpose(W)) with W a matrix [M, K]
// and A [..., K] contracting its last axis with axis 0 of Transpose(W) [K, M]: Linear's form
// on the go backend; a prepared transpose of W (SetTransposed) counts as Transpose(W). GoMLX's
// gradient dA = dC Transpose(W)^T contracts dC with the transpose's last axis, the matmul's
// slow layout for small products; contracting dC [..., M] with W's axis 0 is the same product
// with W as it is, in the fast layout, and needs no transpose.
// Anything else returns nil (GoMLX's gradient is kept).
func lhsGradientThroughTranspose(node, v *Node) *Node {
	d, ok := parseDotGeneral(node)
	if !ok || len(d.lhsBatch) != 0 || len(d.rhsBatch) != 0 || len(d.lhsContracting) != 1 || len(d.rhsContracting) != 1 {
		return nil
	}
	a, b := node.Inputs()[0], node.Inputs()[1]
	if d.lhsContracting[0] != a.Rank()-1 || d.rhsContracting[0] != 0 || b.Rank() != 2 {
		return nil
	}
	w := weightOf(b) // a prepared transpose (SetTransposed)
	if w == nil {
		if b.Type() != NodeTypeTranspose || len(b.Inputs()) != 1 || !isSwap(b) {
			return nil
		}
		w = b.Inputs()[0]
	}
	if v.DType() != w.DType() || v.Shape().Dimensions[v.Rank()-1] != w.Shape().Dimensions[0] {
		return nil
	}
	g := DotGeneral(v, []int{v.Rank() - 1}, nil, w, []int{0}, nil)
	if !g.Shape().Equal(a.Shape()) {
		return nil
	}
	return g
}

// isSwap reports whether x, a Transpose of a matrix, has the permutation [1 0].
func isSwap(x *Node) bool {
	perm, ok := transposePermutation(x)
	return ok && slices.Equal(perm, []int{1, 0})
}

// transposePermutation reads the permutation of a Transpose node from its description (GoMLX
// does not export it); ok is false unless it is one index per axis.
func transposePermutation(x *Node) (perm []int, ok bool) {
	m := permutationRE.FindStringSubmatch(x.String())
	if m == nil {
		return nil, false
	}
	for _, f := range strings.Fields(m[1]) {
		p, err := strconv.Atoi(f)
		if err != nil {
			return nil, false
		}
		perm = append(perm, p)
	}
	return perm, len(perm) == x.Rank()
}

// dotGeneralAxes are a DotGeneral node's axes, read from its description: GoMLX does not export
// them.
type dotGeneralAxes struct {
	lhsContracting, lhsBatch, rhsContracting, rhsBatch []int
}

var (
	dotGeneralRE = regexp.MustCompile(`^DotGeneral\(lhs=\[#\d+\], lhsContractingAxes=\[([0-9 ]*)\], lhsBatchAxes=\[([0-9 ]*)\], ` +
		`rhs=\[#\d+\], rhsContractingAxes=\[([0-9 ]*)\], rhsBatchAxes=\[([0-9 ]*)\], config=(\{[^}]*\})\)`)
	defaultDotConfig = fmt.Sprintf("%+v", compute.DotGeneralConfig{})
)

// parseDotGeneral reads node's axes; ok is false for anything but a DotGeneral with the default
// config (no accumulator or output dtype).
func parseDotGeneral(node *Node) (d dotGeneralAxes, ok bool) {
	if node.Type() != NodeTypeDotGeneral || len(node.Inputs()) != 2 {
		return d, false
	}
	s := node.String()
	if i := strings.Index(s, "DotGeneral("); i >= 0 {
		s = s[i:]
	}
	m := dotGeneralRE.FindStringSubmatch(s)
	if m == nil || m[5] != defaultDotConfig {
		return d, false
	}
	lists := make([][]int, 4)
	for i := range lists {
		for _, f := range strings.Fields(m[i+1]) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return d, false
			}
			lists[i] = append(lists[i], n)
		}
	}
	return dotGeneralAxes{lists[0], lists[1], lists[2], lists[3]}, true
}
