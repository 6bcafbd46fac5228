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
