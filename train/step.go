package train

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/distill"
	"github.com/switchkd/switchkd/models/layers"
	"github.com/switchkd/switchkd/models/qwen2"
	"github.com/switchkd/switchkd/models/tinyllava"
)

// Module is a part of a TinyLLaVA model that can be frozen or trained.
type Module string

const (
	Vision    Module = "vision_tower"
	Connector Module = "connector"
	LLM       Module = "llm"
)

// ModuleOf returns the module a checkpoint tensor belongs to.
func ModuleOf(name string) Module {
	switch {
	case strings.HasPrefix(name, tinyllava.VisionPrefix), strings.HasPrefix(name, "vision_tower."):
		return Vision
	case strings.HasPrefix(name, "connector."):
		return Connector
	default:
		return LLM
	}
}

// Pair is one micro-batch laid out for the three forward passes. The student layout serves
// the student and the visual switch (the switch reads the student's image features, so it has
// the student's number of image slots); the teacher has its own.
type Pair struct {
	Student, Teacher *tinyllava.Batch
	// CE: supervised student positions (flat b*L+t), their targets and 0/1 weights.
	CEPos, CETargets []int32
	CEWeights        []float32
	// KD: the k-th supervised position of each sample in the student and teacher layouts,
	// paired by answer-token order, with 0/1 weights.
	KDStudent, KDTeacher []int32
	KDWeights            []float32
	CETokens, KDTokens   int
}

// graphKey names the variant of the step (or losses) graph a micro-batch needs: whether the
// student and teacher batches carry pixels, and whether the KD rows are the CE rows (the usual
// case: teacher and student supervise the same answer tokens), so the student's LM head runs
// over those rows once.
type graphKey struct{ sImg, tImg, kdIsCE bool }

// key returns the graph variant p needs.
func (p *Pair) key() graphKey {
	return graphKey{
		sImg:   p.Student.NumImages > 0,
		tImg:   p.Teacher != nil && p.Teacher.NumImages > 0,
		kdIsCE: p.Teacher != nil && slices.Equal(p.KDStudent, p.CEPos),
	}
}

func padTo(n, bucket int) int {
	if n == 0 {
		n = 1
	}
	return (n + bucket - 1) / bucket * bucket
}

// NewPair lays a micro-batch out for the student and, when teacher is non-nil, the teacher.
// Positions are bucketed (lengths to multiples of seqBucket, supervised counts to multiples of
// posBucket) so the step graph compiles for few shapes.
func NewPair(student, teacher *tinyllava.Config, sIn, tIn []tinyllava.Input, seqBucket, posBucket int) (*Pair, error) {
	sb, err := student.BuildBatch(sIn, seqBucket)
	if err != nil {
		return nil, err
	}
	p := &Pair{Student: sb}
	sRows := sb.SupervisedRows()
	p.CEPos, p.CETargets, p.CEWeights = sb.Supervised(posBucket)
	for _, r := range sRows {
		p.CETokens += len(r)
	}
	if teacher == nil {
		return p, nil
	}
	tb, err := teacher.BuildBatch(tIn, seqBucket)
	if err != nil {
		return nil, err
	}
	p.Teacher = tb
	tRows := tb.SupervisedRows()
	for i := range sRows {
		k := min(len(sRows[i]), len(tRows[i]))
		for j := 0; j < k; j++ {
			p.KDStudent = append(p.KDStudent, sRows[i][j])
			p.KDTeacher = append(p.KDTeacher, tRows[i][j])
			p.KDWeights = append(p.KDWeights, 1)
		}
	}
	p.KDTokens = len(p.KDStudent)
	n := padTo(len(p.KDStudent), posBucket)
	for len(p.KDStudent) < n {
		p.KDStudent, p.KDTeacher, p.KDWeights = append(p.KDStudent, 0), append(p.KDTeacher, 0), append(p.KDWeights, 0)
	}
	return p, nil
}

// Terms are the loss terms of one micro-batch, each a weighted SUM over its positions (the
// caller divides by the global batch's token counts).
type Terms struct{ CE, Align, VSD float64 }

// stepGraph builds the gradient graph of one micro-batch.
type stepGraph struct {
	student, teacher *tinyllava.Model
	obj              Objective
	trainable        []string // student parameter names that get gradients, sorted
	unfusedGrads     bool     // tests: keep GoMLX's gradients as built (no ScatterIntoSum)
	// The frozen teacher's matrices that also enter the graph transposed (prepareTwins), and
	// those transposes, on the backend.
	twins    []string
	twinArgs []any
	// Groups of the teacher's matrices read by one layers.LinearsW (each layer's q, k, v) that
	// enter the graph fused: for each, its transpose [in, sum of outs] and itself [sum, in]
	// (appended to twinArgs after the single transposes).
	fused [][]string
}

// twinMaxSize caps the matrices that get a prepared transpose (elements): the small products
// whose layout matters on the go backend; the large ones run the packed kernel either way.
const twinMaxSize = 1 << 18

// prepareTwins makes, once, the transposes of the teacher's matrices that the go backend would
// otherwise transpose in every step (Linear's fast layout for small products, see
// layers.SetTransposed): rank-2 ".weight" parameters of at most twinMaxSize elements. Each
// decoder layer's q, k and v projections are fused instead (layers.SetFusedTransposed): one
// product forward and one in the gradient instead of three each.
func (s *stepGraph) prepareTwins() error {
	s.twins, s.twinArgs, s.fused = nil, nil, nil
	if !s.needTeacher() || !layers.IsGoBackend(s.teacher.Backend) {
		return nil
	}
	eligible := func(n string) bool {
		x := s.teacher.Params.T[n]
		return x != nil && x.Rank() == 2 && x.DType() == dtypes.Float32 && x.Size() <= twinMaxSize && strings.HasSuffix(n, ".weight")
	}
	inFused := map[string]bool{}
	for i := range s.teacher.Config.Text.NumHiddenLayers {
		var group []string
		for _, p := range qwen2.QKVPrefixes(qwen2.LayerPrefix(tinyllava.LLMPrefix, i)) {
			if n := p + ".weight"; eligible(n) && slices.Contains(s.teacher.Params.Used, n) {
				group = append(group, n)
			}
		}
		if len(group) == 3 {
			s.fused = append(s.fused, group)
			for _, n := range group {
				inFused[n] = true
			}
		}
	}
	var args []any
	add := func(what string, data []float32, dims ...int) error {
		t := tensors.FromFlatDataAndDimensions(data, dims...)
		if err := t.ToDevice(s.teacher.Backend, 0); err != nil {
			return fmt.Errorf("moving %s to the backend: %w", what, err)
		}
		args = append(args, t)
		return nil
	}
	for _, n := range s.teacher.Params.Used {
		if !eligible(n) || inFused[n] {
			continue
		}
		x := s.teacher.Params.T[n]
		if err := add("the transpose of "+n, transposed(tensors.MustCopyFlatData[float32](x), x.Shape().Dimensions[0]), x.Shape().Dimensions[1], x.Shape().Dimensions[0]); err != nil {
			return err
		}
		s.twins = append(s.twins, n)
	}
	for _, group := range s.fused {
		var w []float32
		for _, n := range group {
			w = append(w, tensors.MustCopyFlatData[float32](s.teacher.Params.T[n])...)
		}
		in := s.teacher.Params.T[group[0]].Shape().Dimensions[1]
		rows := len(w) / in
		if err := add("the fused transpose of "+strings.Join(group, ", "), transposed(w, rows), in, rows); err != nil {
			return err
		}
		if err := add("the fused "+strings.Join(group, ", "), w, rows, in); err != nil {
			return err
		}
	}
	s.twinArgs = args
	return nil
}

// transposed returns the transpose of the row-major matrix x with the given number of rows.
func transposed(x []float32, rows int) []float32 {
	cols := len(x) / rows
	out := make([]float32, len(x))
	for i := range rows {
		for j := range cols {
			out[j*rows+i] = x[i*cols+j]
		}
	}
	return out
}

// teacherArgs are the teacher's graph inputs: its used parameters, then the prepared transposes.
func (s *stepGraph) teacherArgs() []any {
	return append(s.teacher.ParamArgs(), s.twinArgs...)
}

func (s *stepGraph) needTeacher() bool {
	return s.teacher != nil && (s.useAlign() || s.useVSD())
}
func (s *stepGraph) useAlign() bool { return s.obj.WAlign != 0 && s.obj.Align != None }
func (s *stepGraph) useVSD() bool   { return s.obj.WVSD != 0 && s.obj.VSD != None }

// terms are one micro-batch's per-position loss terms inside a graph.
type terms struct {
	ws               layers.Weights
	ce, align, vsd   *Node // [Nce], [Nkd], [Nkd]; align/vsd nil when not used
	ceW, kdW         *Node // 0/1 position weights
	ceScale, kdScale *Node // 1 / global-batch token counts (float64 scalars)
}

// forward builds the three forward passes and the per-position terms. Inputs: student params
// (Used order), teacher params (Used order, then the prepared transposes; if needed), student
// batch, teacher batch (if needed), then CEPos, CETargets, CEWeights, ceScale, [KDStudent,
// KDTeacher, KDWeights, kdScale].
// grad says whether the graph will be differentiated (the student and the switch path then use
// ops whose gradients need no recomputation).
func (s *stepGraph) forward(in []*Node, key graphKey, grad bool) terms {
	sHasImg, tHasImg := key.sImg, key.tImg
	sc, sNames := s.student.Config, s.student.Params.Used
	if grad {
		sc = sc.Differentiable()
	}
	var r terms
	r.ws = tinyllava.Weights(sNames, in[:len(sNames)])
	in = in[len(sNames):]
	var wt layers.Weights
	var tc *tinyllava.Config
	if s.needTeacher() {
		tNames := s.teacher.Params.Used
		// The teacher is frozen: gradients are taken with respect to the student's parameters
		// only, so autodiff never builds a VJP into these inputs. (A StopGradient here would be
		// an Identity, which the go backend executes as a copy of every teacher weight, every
		// step.)
		wt = tinyllava.Weights(tNames, in[:len(tNames)])
		twins := in[len(tNames):]
		for i, n := range s.twins {
			layers.SetTransposed(wt(n), twins[i])
		}
		twins = twins[len(s.twins):]
		for i, group := range s.fused {
			ws := make([]*Node, len(group))
			for j, n := range group {
				ws[j] = wt(n)
			}
			layers.SetFusedTransposed(ws, twins[2*i], twins[2*i+1])
		}
		// The teacher's own forward uses the same ops as the switch path through it, so equal
		// vision towers give exactly equal logits (a zero VSD term).
		tc = s.teacher.Config
		if grad && s.useVSD() {
			tc = tc.Differentiable()
		}
		in = in[len(tNames)+len(s.twinArgs):]
	}
	sb, rest := tinyllava.BatchInputs(in, sHasImg)
	var tb tinyllava.BatchNodes
	if s.needTeacher() {
		tb, rest = tinyllava.BatchInputs(rest, tHasImg)
	}
	cePos, ceTgt := rest[0], rest[1]
	r.ceW, r.ceScale = rest[2], rest[3]
	rest = rest[4:]
	var kdS, kdT *Node
	if s.needTeacher() {
		kdS, kdT = rest[0], rest[1]
		r.kdW, r.kdScale = rest[2], rest[3]
	}
	// The student's vision features, computed once for the student and the switch path.
	var features *Node
	if sb.Pixels != nil {
		features = sc.VisionFeatures(r.ws, sb.Pixels)
	}
	hsFlat := flatten(sc.HiddenFromFeatures(r.ws, features, sb))
	// The student's LM head runs once, over the CE rows and (when aligning) the KD rows
	// together: one vocabulary-sized weight gradient instead of two plus their sum. When the
	// KD rows are the CE rows, over those rows alone.
	rows := cePos
	if s.needTeacher() && s.useAlign() && !key.kdIsCE {
		rows = Concatenate([]*Node{cePos, kdS}, 0)
	}
	zAll := sc.Logits(r.ws, gatherRows(hsFlat, rows))
	nCE := cePos.Shape().Dimensions[0]
	r.ce = distill.CE(SliceAxis(zAll, 0, AxisRange(0, nCE)), ceTgt, r.ceW)
	if !s.needTeacher() {
		return r
	}
	v := min(sc.Text.VocabSize, tc.Text.VocabSize)
	cut := func(x *Node) *Node { return SliceAxis(x, -1, AxisRange(0, v)) }
	zt := StopGradient(cut(tc.Logits(wt, gatherRows(flatten(tc.Hidden(wt, tb)), kdT))))
	if s.useAlign() {
		zs := zAll
		if !key.kdIsCE {
			zs = SliceAxis(zAll, 0, AxisRangeToEnd(nCE))
		}
		zs = cut(zs)
		r.align = perPosition(s.obj.Align, zt, zs, r.kdW, s.obj)
	}
	if s.useVSD() {
		// Visual switch: the student's vision features through the teacher's connector and LLM.
		hw := tc.HiddenFromFeatures(wt, features, sb)
		zw := cut(tc.Logits(wt, gatherRows(flatten(hw), kdS)))
		r.vsd = perPosition(s.obj.VSD, zt, zw, r.kdW, s.obj)
	}
	return r
}

// build returns the gradient graph function (inputs as forward). Outputs: the gradients of the
// scaled total w.r.t. the trainable parameters, then the three unscaled term sums (float64).
func (s *stepGraph) build(key graphKey) func([]*Node) []*Node {
	return func(in []*Node) []*Node {
		r := s.forward(in, key, true)
		g := r.ce.Graph()
		ceSum := weightedSum(r.ce, r.ceW)
		total := Mul(ceSum, MulScalar(r.ceScale, s.obj.WCE))
		alignSum, vsdSum := ScalarZero(g, dtypes.Float64), ScalarZero(g, dtypes.Float64)
		if r.align != nil {
			alignSum = weightedSum(r.align, r.kdW)
			total = Add(total, Mul(alignSum, MulScalar(r.kdScale, s.obj.WAlign)))
		}
		if r.vsd != nil {
			vsdSum = weightedSum(r.vsd, r.kdW)
			total = Add(total, Mul(vsdSum, MulScalar(r.kdScale, s.obj.WVSD)))
		}
		nodes := make([]*Node, len(s.trainable))
		for i, n := range s.trainable {
			nodes[i] = r.ws(n)
		}
		grads := Gradient(total, nodes...)
		if !s.unfusedGrads {
			// The tied embedding's two gradients as one scatter into the LM head's gradient.
			for i := range grads {
				grads[i] = layers.ScatterIntoSum(grads[i])
			}
		}
		return append(grads, ceSum, alignSum, vsdSum)
	}
}

// buildLosses returns a forward-only graph (inputs as forward) whose outputs are the
// per-position ce [Nce], align [Nkd] and vsd [Nkd] (zeros for unused terms).
func (s *stepGraph) buildLosses(key graphKey) func([]*Node) []*Node {
	return func(in []*Node) []*Node {
		r := s.forward(in, key, false)
		align, vsd := r.align, r.vsd
		if align == nil {
			align = ZerosLike(r.ce)
			if r.kdW != nil {
				align = ZerosLike(r.kdW)
			}
		}
		if vsd == nil {
			vsd = ZerosLike(align)
		}
		return []*Node{r.ce, align, vsd}
	}
}

func flatten(h *Node) *Node {
	d := h.Shape().Dimensions
	return Reshape(h, d[0]*d[1], d[2])
}

func gatherRows(x, idx *Node) *Node { return Gather(x, InsertAxes(idx, -1)) }

// weightedSum is sum_i w_i x_i accumulated in float64 (float32 ReduceSum adds one by one).
func weightedSum(x, w *Node) *Node {
	return ReduceAllSum(ConvertDType(Mul(x, w), dtypes.Float64))
}

// trainableNames lists the student's used parameters in the trainable modules.
func trainableNames(m *tinyllava.Model, modules map[Module]bool) []string {
	var out []string
	for _, n := range m.Params.Used {
		if modules[ModuleOf(n)] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func checkSwitch(student, teacher *tinyllava.Config) error {
	if teacher.Vision.HiddenSize != student.Vision.HiddenSize {
		return fmt.Errorf("visual switch: the teacher's connector reads %d-wide vision features but the student's vision tower emits %d",
			teacher.Vision.HiddenSize, student.Vision.HiddenSize)
	}
	return nil
}
