// Package connector holds TinyLLaVA's vision-to-language projectors: "linear" (a bare
// nn.Linear: connector._connector.{weight,bias}) and "mlp{N}x_gelu" (Linear, then N-1 times
// GELU (exact erf) + Linear, an nn.Sequential: connector._connector.{0,2,4,...}.{weight,bias}).
package connector

import (
	"fmt"
	"regexp"
	"strconv"

	. "github.com/gomlx/gomlx/core/graph"

	"github.com/switchkd/switchkd/models/layers"
)

// Prefix is where TinyLLaVA stores the connector's tensors.
const Prefix = "connector._connector."

var mlpGelu = regexp.MustCompile(`^mlp(\d+)x_gelu$`)

// Depth returns the number of Linear layers of a connector type.
func Depth(connectorType string) (int, error) {
	if connectorType == "linear" {
		return 1, nil
	}
	if m := mlpGelu.FindStringSubmatch(connectorType); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n >= 1 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("connector_type %q is not supported (supported: linear, mlp2x_gelu, mlpNx_gelu)", connectorType)
}

// Tensors lists the connector's tensors for a vision width in and a language width out.
func Tensors(connectorType string, in, out int) (map[string][]int, error) {
	depth, err := Depth(connectorType)
	if err != nil {
		return nil, err
	}
	t := map[string][]int{}
	if connectorType == "linear" {
		t[Prefix+"weight"], t[Prefix+"bias"] = []int{out, in}, []int{out}
		return t, nil
	}
	for i := 0; i < depth; i++ {
		width := out
		if i == 0 {
			width = in
		}
		p := fmt.Sprintf("%s%d.", Prefix, 2*i)
		t[p+"weight"], t[p+"bias"] = []int{out, width}, []int{out}
	}
	return t, nil
}

// Forward projects vision features [..., in] to language embeddings [..., out].
func Forward(w layers.Weights, connectorType string, x *Node) *Node {
	depth, err := Depth(connectorType)
	if err != nil {
		panic(err)
	}
	if connectorType == "linear" {
		return layers.LinearW(w, Prefix[:len(Prefix)-1], x, true)
	}
	for i := 0; i < depth; i++ {
		if i > 0 {
			x = layers.GeluErf(x)
		}
		x = layers.LinearW(w, fmt.Sprintf("%s%d", Prefix, 2*i), x, true)
	}
	return x
}
