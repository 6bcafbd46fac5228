package train

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/engine"
	"github.com/switchkd/switchkd/models/layers"
	"github.com/switchkd/switchkd/models/tinyllava"
)

func cfg(t *testing.T, hidden, layers int) *tinyllava.Config {
	t.Helper()
	c, err := tinyllava.ParseConfig([]byte(`{"model_type":"tinyllava","connector_type":"mlp2x_gelu",
	 "tokenizer_model_max_length":128,
	 "text_config":{"model_type":"qwen2","vocab_size":64,"hidden_size":` + itoa(hidden) + `,"intermediate_size":48,
	   "num_hidden_layers":` + itoa(layers) + `,"num_attention_heads":4,"num_key_value_heads":2,"rope_theta":10000,
	   "rms_norm_eps":1e-6,"tie_word_embeddings":true,"max_position_embeddings":512},
	 "vision_config":{"model_type":"siglip_vision_model","hidden_size":16,"intermediate_size":24,
	   "num_hidden_layers":2,"num_attention_heads":2,"image_size":16,"patch_size":4,"layer_norm_eps":1e-6}}`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// pairModels returns a teacher and a student that share the vision tower's shape; the
// student's vision tower starts as a copy of the teacher's (as in the paper).
func pairModels(t *testing.T, copyVision bool) (teacher, student *tinyllava.Model) {
	b := engine.MustBackend("")
	tc, sc := cfg(t, 48, 2), cfg(t, 32, 1)
	tp := tinyllava.RandomParams(tc, 0.2, 1)
	sp := tinyllava.RandomParams(sc, 0.2, 2)
	for n := range sp {
		if copyVision && ModuleOf(n) == Vision {
			sp[n] = tensors.FromFlatDataAndDimensions(tensors.MustCopyFlatData[float32](tp[n]), tp[n].Shape().Dimensions...)
		}
	}
	var err error
	if teacher, err = tinyllava.New(tc, tp, b); err != nil {
		t.Fatal(err)
	}
	if student, err = tinyllava.New(sc, sp, b); err != nil {
		t.Fatal(err)
	}
	return
}

// dataset: 8 samples; the answer tokens depend on the image (a colour id), so the task needs vision.
func dataset(c *tinyllava.Config) []Sample {
	rng := rand.New(rand.NewPCG(11, 12))
	var out []Sample
	for i := 0; i < 8; i++ {
		px := make([]float32, 3*c.Vision.ImageSize*c.Vision.ImageSize)
		for j := range px {
			px[j] = float32(rng.Float64()*0.2) + float32(i%4)*0.4 - 0.6
		}
		ans := 10 + i%4
		ids := []int{3, tinyllava.ImageTokenIndex, 4, 5, ans, ans + 20, 2}
		labels := []int{-100, -100, -100, -100, ans, ans + 20, 2}
		in := tinyllava.Input{ID: itoa(i), IDs: ids, Labels: labels, Images: [][]float32{px}}
		out = append(out, Sample{Student: in, Teacher: in})
	}
	return out
}

func readMetrics(t *testing.T, path string) []Metrics {
	t.Helper()
	ms, err := ReadMetrics(path)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func newTrainer(t *testing.T, out string, steps int, obj Objective, mods []Module) (*Trainer, *tinyllava.Model, *tinyllava.Model) {
	// A student whose vision tower starts as the teacher's has VSD = 0 (and a zero VSD
	// gradient) at step 1; only tests of the switch path alone start it elsewhere.
	copyVision := !(obj.WCE == 0 && obj.WAlign == 0)
	teacher, student := pairModels(t, copyVision)
	tr := &Trainer{
		Student: student, Teacher: teacher,
		Stages: []Stage{{Name: "switchkd", Steps: steps, LR: 3e-3, WarmupRatio: 0.1, Train: mods, Objective: obj}},
		Opt: Options{Optimizer: DefaultAdamW(), GlobalBatch: 4, MicroBatch: 2, SeqBucket: 8, PosBucket: 8,
			Out: out, SaveEvery: 3, KeepLast: 2},
		Feed: &SliceFeed{Items: dataset(student.Config), Seed: 5},
	}
	return tr, teacher, student
}

func snapshot(m *tinyllava.Model) map[string][]float32 {
	s := map[string][]float32{}
	for n, x := range m.Params.T {
		s[n] = tensors.MustCopyFlatData[float32](x)
	}
	return s
}

func TestSwitchKDTrainingLowersLoss(t *testing.T) {
	out := t.TempDir()
	tr, teacher, student := newTrainer(t, out, 30, DefaultObjective(), []Module{Vision, Connector, LLM})
	before := snapshot(teacher)
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	ms := readMetrics(t, filepath.Join(out, "metrics.jsonl"))
	if len(ms) != 30 {
		t.Fatalf("%d metric lines, want 30", len(ms))
	}
	first := (ms[0].Total + ms[1].Total + ms[2].Total) / 3
	last := (ms[27].Total + ms[28].Total + ms[29].Total) / 3
	if !(last < 0.7*first) {
		t.Fatalf("total loss did not fall: first %.4f, last %.4f", first, last)
	}
	// The student's vision tower starts as a copy of the teacher's, so the switch logits equal
	// the teacher's at step 1 (VSD = 0); once the tower moves, VSD is positive.
	if ms[0].VSD != 0 {
		t.Fatalf("step 1: VSD %g, want exactly 0 (identical vision towers)", ms[0].VSD)
	}
	for _, m := range ms[2:] {
		if m.CE <= 0 || m.Align <= 0 || m.VSD <= 0 {
			t.Fatalf("step %d: every term should be positive: %+v", m.Step, m)
		}
	}
	// The teacher is frozen: bit-identical weights, no optimizer state.
	for n, v := range snapshot(teacher) {
		for i := range v {
			if v[i] != before[n][i] {
				t.Fatalf("teacher tensor %s changed", n)
			}
		}
	}
	for n := range tr.m {
		if _, ok := student.Params.T[n]; !ok {
			t.Fatalf("optimizer state for %s, which is not a student parameter", n)
		}
	}
	// The final student loads as a TinyLLaVA checkpoint.
	m2, err := tinyllava.Load(filepath.Join(out, "student"), student.Backend)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Config.Text.HiddenSize != 32 {
		t.Fatalf("saved student has hidden %d", m2.Config.Text.HiddenSize)
	}
}

// With only the visual-switch term and only the vision tower trainable, the loss must still
// fall: the gradient reaches the student's vision tower through the frozen teacher.
func TestVisualSwitchTrainsStudentVision(t *testing.T) {
	out := t.TempDir()
	obj := DefaultObjective()
	obj.WCE, obj.WAlign, obj.VSD = 0, 0, FKL
	tr, _, student := newTrainer(t, out, 20, obj, []Module{Vision})
	before := snapshot(student)
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	after := snapshot(student)
	changed := map[Module]bool{}
	for n, v := range after {
		for i := range v {
			if v[i] != before[n][i] {
				changed[ModuleOf(n)] = true
				break
			}
		}
	}
	if !changed[Vision] || changed[Connector] || changed[LLM] {
		t.Fatalf("changed modules %v; want only the vision tower", changed)
	}
	ms := readMetrics(t, filepath.Join(out, "metrics.jsonl"))
	if !(ms[len(ms)-1].VSD < 0.9*ms[0].VSD) {
		t.Fatalf("vsd did not fall: %.5f -> %.5f", ms[0].VSD, ms[len(ms)-1].VSD)
	}
}

// Killing a run after step 4 and resuming from its checkpoint (step 3) reproduces the loss
// curve of an uninterrupted run exactly.
func TestResumeReproducesCurve(t *testing.T) {
	straightDir, resumedDir := t.TempDir(), t.TempDir()
	tr, _, _ := newTrainer(t, straightDir, 8, DefaultObjective(), []Module{Vision, Connector, LLM})
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	tr, _, _ = newTrainer(t, resumedDir, 8, DefaultObjective(), []Module{Vision, Connector, LLM})
	tr.Opt.StopAfter = 4
	if err := tr.Run(); err != ErrStopped {
		t.Fatalf("Run: %v, want ErrStopped", err)
	}
	tr, _, _ = newTrainer(t, resumedDir, 8, DefaultObjective(), []Module{Vision, Connector, LLM})
	ok, err := tr.Resume()
	if err != nil || !ok {
		t.Fatalf("Resume: %v, %v", ok, err)
	}
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	a := readMetrics(t, filepath.Join(straightDir, "metrics.jsonl"))
	b := readMetrics(t, filepath.Join(resumedDir, "metrics.jsonl"))
	if len(a) != 8 || len(b) != 8 {
		t.Fatalf("%d and %d metric lines, want 8", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Step != y.Step || x.Total != y.Total || x.CE != y.CE || x.Align != y.Align || x.VSD != y.VSD || x.LR != y.LR || x.GradNorm != y.GradNorm {
			t.Fatalf("step %d differs after resume:\n straight %+v\n resumed  %+v", i+1, x, y)
		}
	}
	cps, _ := os.ReadDir(filepath.Join(resumedDir, "checkpoints"))
	if len(cps) != 2 {
		t.Fatalf("%d checkpoints kept, want 2", len(cps))
	}
}

// Micro-batches with and without images (text-only samples) use different graphs; a run that
// mixes them must train through both.
func TestMixedImageAndTextOnlyBatches(t *testing.T) {
	out := t.TempDir()
	tr, _, student := newTrainer(t, out, 6, DefaultObjective(), []Module{Vision, Connector, LLM})
	items := dataset(student.Config)
	for i := range items[:4] {
		in := items[i].Student
		in.IDs = []int{3, 4, 5, 10 + i, 30 + i, 2}
		in.Labels = []int{-100, -100, -100, 10 + i, 30 + i, 2}
		in.Images = nil
		items[i] = Sample{Student: in, Teacher: in}
	}
	tr.Feed = &SliceFeed{Items: items, Seed: 3}
	tr.Opt.GlobalBatch, tr.Opt.MicroBatch = 2, 1
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	ms := readMetrics(t, filepath.Join(out, "metrics.jsonl"))
	if len(ms) != 6 {
		t.Fatalf("%d metric lines, want 6", len(ms))
	}
	for _, m := range ms {
		if !(m.CE > 0) {
			t.Fatalf("step %d: ce %v", m.Step, m.CE)
		}
	}
}

// Concurrent chunks (Options.Concurrent) change only the order of float32 sums: the curve matches
// a one-chunk run closely, and two runs with the same workers match exactly.
func TestWorkersSplitMicroBatches(t *testing.T) {
	run := func(workers int) []Metrics {
		dir := t.TempDir()
		tr, _, _ := newTrainer(t, dir, 4, DefaultObjective(), []Module{Vision, Connector, LLM})
		tr.Opt.GlobalBatch, tr.Opt.MicroBatch, tr.Opt.Concurrent = 4, 4, workers
		if err := tr.Run(); err != nil {
			t.Fatal(err)
		}
		return readMetrics(t, filepath.Join(dir, "metrics.jsonl"))
	}
	one, three, threeAgain := run(1), run(3), run(3)
	for i := range one {
		a, b, c := one[i], three[i], threeAgain[i]
		if b.Total != c.Total || b.GradNorm != c.GradNorm {
			t.Fatalf("step %d: two runs with 3 workers differ: %+v vs %+v", i+1, b, c)
		}
		for _, d := range [][2]float64{{a.CE, b.CE}, {a.Align, b.Align}, {a.VSD, b.VSD}, {a.GradNorm, b.GradNorm}} {
			if math.Abs(d[0]-d[1]) > 1e-4*(1+math.Abs(d[0])) {
				t.Fatalf("step %d: 1 worker %+v\n 3 workers %+v", i+1, a, b)
			}
		}
		if a.Tokens != b.Tokens {
			t.Fatalf("step %d: %d tokens with 1 worker, %d with 3", i+1, a.Tokens, b.Tokens)
		}
	}
}

// stepSetup returns a trainer with the default objective over all modules, its first stage's
// step graph, the first two dataset items and their micro-batch.
func stepSetup(t *testing.T) (*Trainer, *tinyllava.Model, *compiled, *Pair, []Sample) {
	tr, _, student := newTrainer(t, t.TempDir(), 1, DefaultObjective(), []Module{Vision, Connector, LLM})
	if err := tr.validate(); err != nil {
		t.Fatal(err)
	}
	c, err := tr.newStepGraph(tr.Stages[0])
	if err != nil {
		t.Fatal(err)
	}
	items := dataset(student.Config)[:2]
	p, err := NewPair(student.Config, tr.Teacher.Config, []tinyllava.Input{items[0].Student, items[1].Student},
		[]tinyllava.Input{items[0].Teacher, items[1].Teacher}, 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	return tr, student, c, p, items
}

// The step graph's gradient of the student's tied embedding is one ScatterSum into the LM
// head's gradient (layers.ScatterIntoSum), and every gradient equals the one GoMLX builds
// without the rewrite.
func TestTiedEmbeddingGradientIsOneScatter(t *testing.T) {
	tr, student, c, p, _ := stepSetup(t)
	embed := -1
	for i, n := range c.sg.trainable {
		if n == "language_model.model.embed_tokens.weight" {
			embed = i
		}
	}
	if embed < 0 || !student.Config.Text.TieWordEmbeddings {
		t.Fatalf("the test needs a tied student embedding among %v", c.sg.trainable)
	}
	var grads [2][]*tensors.Tensor
	for k, unfused := range []bool{false, true} {
		c.sg.unfusedGrads = unfused
		var typ NodeType
		grads[k] = gradsThrough(t, tr, c, p, func(_, out []*Node) { typ = out[embed].Type() })
		if want := map[bool]NodeType{false: NodeTypeScatterSum, true: NodeTypeAdd}[unfused]; typ != want {
			t.Fatalf("unfused=%v: embedding gradient is a %s node, want %s", unfused, typ, want)
		}
	}
	for i, n := range c.sg.trainable {
		a, b := tensors.MustCopyFlatData[float32](grads[0][i]), tensors.MustCopyFlatData[float32](grads[1][i])
		var scale float64
		for _, x := range b {
			scale = math.Max(scale, math.Abs(float64(x)))
		}
		for j := range a {
			if d := math.Abs(float64(a[j] - b[j])); d > 1e-6*scale {
				t.Fatalf("%s[%d]: %g with the rewrite, %g without", n, j, a[j], b[j])
			}
		}
	}
}

// When the KD rows are the CE rows (teacher and student supervise the same answer tokens), the
// student's LM head runs over them once; the gradients and term sums equal those of the graph
// that runs it over the CE rows and the KD rows separately.
func TestSharedLMHeadRows(t *testing.T) {
	tr, student, c, p, items := stepSetup(t)
	key := p.key()
	if !key.kdIsCE {
		t.Fatalf("same answer tokens in both layouts, but the KD rows %v differ from the CE rows %v", p.KDStudent, p.CEPos)
	}
	var outs [2][]*tensors.Tensor
	for i, shared := range []bool{true, false} {
		k := key
		k.kdIsCE = shared
		e, err := NewExec(student.Backend, c.sg.build(k))
		if err != nil {
			t.Fatal(err)
		}
		c.grad = map[graphKey]*Exec{key: e} // pairGrads asks for p.key()
		if outs[i], err = tr.pairGrads(c, p, 0.1, 0.1); err != nil {
			t.Fatal(err)
		}
	}
	names := append(append([]string(nil), c.sg.trainable...), "ce sum", "align sum", "vsd sum")
	// Gradients that are 0 in exact arithmetic (k_proj's bias: softmax ignores a shift of every
	// score) are rounding noise on either side: compare against the largest gradient too.
	var global float64
	for i := range c.sg.trainable {
		for _, x := range tensorValues(outs[1][i]) {
			global = math.Max(global, math.Abs(x))
		}
	}
	for i, n := range names {
		a, b := tensorValues(outs[0][i]), tensorValues(outs[1][i])
		var scale float64
		for _, x := range b {
			scale = math.Max(scale, math.Abs(x))
		}
		for j := range a {
			if d := math.Abs(a[j] - b[j]); d > 1e-5*scale+1e-7*global {
				t.Fatalf("%s[%d]: %g with the shared rows, %g with separate ones", n, j, a[j], b[j])
			}
		}
	}
	// A teacher that supervises one token less in a row: the KD rows are then a subset of the
	// CE rows, and the graph keeps them apart.
	short := items[0].Teacher
	short.Labels = append([]int(nil), short.Labels...)
	for i := len(short.Labels) - 1; i >= 0; i-- {
		if short.Labels[i] != tinyllava.IgnoreIndex {
			short.Labels[i] = tinyllava.IgnoreIndex
			break
		}
	}
	q, err := NewPair(student.Config, tr.Teacher.Config, []tinyllava.Input{items[0].Student, items[1].Student},
		[]tinyllava.Input{short, items[1].Teacher}, 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	if q.key().kdIsCE {
		t.Fatalf("KD rows %v (teacher one token short) taken for the CE rows %v", q.KDStudent, q.CEPos)
	}
}

// tensorValues returns a float32 or float64 tensor's values as float64.
func tensorValues(x *tensors.Tensor) []float64 {
	var out []float64
	switch x.DType() {
	case dtypes.Float64:
		out = tensors.MustCopyFlatData[float64](x)
	default:
		for _, v := range tensors.MustCopyFlatData[float32](x) {
			out = append(out, float64(v))
		}
	}
	return out
}

// The frozen teacher's matrices enter the step graph with their transposes prepared once, each
// layer's q, k, v fused (stepGraph.prepareTwins): no Transpose of a teacher weight is left in the
// graph, and the gradients and term sums equal those of the graph that transposes the weights
// itself and projects q, k, v apart.
func TestTeacherTransposesPrepared(t *testing.T) {
	tr, student, c, p, _ := stepSetup(t)
	if len(c.sg.twins) == 0 || len(c.sg.fused) != tr.Teacher.Config.Text.NumHiddenLayers {
		t.Fatalf("prepared transposes of %d teacher matrices and %d fused q/k/v groups, want some and one per layer", len(c.sg.twins), len(c.sg.fused))
	}
	nT := len(tr.Teacher.Params.Used)
	nS := len(student.Params.Used)
	var outs [2][]*tensors.Tensor
	for k, prepared := range []bool{true, false} {
		if !prepared {
			c.sg.twins, c.sg.twinArgs, c.sg.fused = nil, nil, nil
		}
		transposed := -1
		outs[k] = gradsThrough(t, tr, c, p, func(in, out []*Node) {
			teacher := map[*Node]bool{}
			for _, n := range in[nS : nS+nT] {
				teacher[n] = true
			}
			transposed = layers.CountReachable(out, func(n *Node) bool {
				return n.Type() == NodeTypeTranspose && teacher[n.Inputs()[0]]
			})
		})
		if prepared && transposed != 0 {
			t.Errorf("with prepared transposes the step still transposes %d teacher weights", transposed)
		}
		if !prepared && transposed == 0 {
			t.Errorf("without prepared transposes no teacher weight is transposed: the comparison tests nothing")
		}
	}
	for i := range outs[0] {
		a, b := flat64(outs[0][i]), flat64(outs[1][i])
		var scale float64
		for _, x := range b {
			scale = math.Max(scale, math.Abs(x))
		}
		for j := range a {
			if d := math.Abs(a[j] - b[j]); d > 1e-5*scale+1e-7 {
				t.Fatalf("output %d[%d]: %g with prepared transposes, %g without", i, j, a[j], b[j])
			}
		}
	}
}

// flat64 copies a float32 or float64 tensor's values as float64.
func flat64(x *tensors.Tensor) []float64 {
	if x.DType() == dtypes.Float64 {
		return tensors.MustCopyFlatData[float64](x)
	}
	f := tensors.MustCopyFlatData[float32](x)
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

// gradsThrough runs c's gradient graph for p (scales 0.1), calling inspect with the graph's
// inputs and outputs while it is built.
func gradsThrough(t *testing.T, tr *Trainer, c *compiled, p *Pair, inspect func(in, out []*Node)) []*tensors.Tensor {
	t.Helper()
	c.grad = map[graphKey]*Exec{}
	build := c.sg.build(p.key())
	e, err := NewExec(tr.Student.Backend, func(in []*Node) []*Node {
		out := build(in)
		inspect(in, out)
		return out
	})
	if err != nil {
		t.Fatal(err)
	}
	c.grad[p.key()] = e
	grads, err := tr.pairGrads(c, p, 0.1, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	return grads
}
