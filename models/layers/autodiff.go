package layers

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
)

// GoMLX's gradient of a DotGeneral ends every operand's gradient with a TransposeAllAxes back
// to the operand's axis order, also when that permutation is the identity, and the go backend
// executes an identity Transpose as a full element-by-element copy. For a linear layer that is
// a copy of every weight gradient through the generic transpose iterator, each step: for the
// tied 151936 x 896 embedding of Qwen2.5-0.5B alone, ~1 s per use on this machine.
//
// init wraps the registered DotGeneral gradient (GoMLX's VJPRegistration is documented as
// replaceable) so that an identity Transpose at the end of an operand's gradient is skipped.
// The values are unchanged; the skipped node is left unused and the backend never runs it.
func init() {
	orig := VJPRegistration[NodeTypeDotGeneral]
	VJPRegistration[NodeTypeDotGeneral] = func(node *Node, vjpOutputs []*Node, outputShape shapes.Shape) []*Node {
		grads := orig(node, vjpOutputs, outputShape)
		for i, g := range grads {
			grads[i] = skipIdentityTranspose(g)
		}
		return grads
	}
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
	m := permutationRE.FindStringSubmatch(x.String())
	if m == nil {
		return x
	}
	fields := strings.Fields(m[1])
	if len(fields) != x.Rank() {
		return x
	}
	for i, f := range fields {
		if p, err := strconv.Atoi(f); err != nil || p != i {
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
// that saves a 151936 x 896 single-threaded fill and add, ~0.5 s a step. The sum is the same,
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
