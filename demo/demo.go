// Package demo is switchkd's main job in one call: it generates the synthetic visual world,
// trains a byte-level BPE tokenizer on its texts, trains a TinyLLaVA teacher from scratch, trains
// small students by supervised fine-tuning, three logit-distillation baselines, the visual switch
// alone and full Switch-KD (same data, steps and seeds), evaluates every model on the world's test
// split per question type and writes a results table like the paper's.
package demo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/compute"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/engine"
	"github.com/switchkd/switchkd/eval"
	"github.com/switchkd/switchkd/models/tinyllava"
	"github.com/switchkd/switchkd/train"
	"github.com/switchkd/switchkd/vlm"
	"github.com/switchkd/switchkd/world"
)

// Options configure Run.
type Options struct {
	Out     string  // output folder
	Profile Profile // DefaultProfile or QuickProfile, possibly adjusted
	Backend string  // "" or "go": the pure-Go CPU backend; "xla[:cuda]" in cgo builds
	// Log gets one line per phase; Progress gets the trainer's progress bar and evaluation
	// progress (both may be nil).
	Log, Progress io.Writer
}

// Layout of the output folder.
const (
	WorldDir   = "world"  // the generated world (images/, train/val/test.json, captions.json, ...)
	AssetsDir  = "assets" // tokenizer and preprocessor files shared by every model
	ModelsDir  = "models" // teacher/ and <method>-s<seed>/ in TinyLLaVA HF layout
	RunsDir    = "runs"   // per training run: metrics.jsonl, loss_curves.png, eval.json, answers.jsonl
	ResultsMD  = "results.md"
	ResultsJS  = "results.json"
	BarChart   = "per_type_accuracy.png"
	TeacherRun = "teacher"
)

// StudentRun names a student's run folder.
func StudentRun(method string, seed int) string { return fmt.Sprintf("%s-s%d", method, seed) }

type runner struct {
	o        Options
	p        Profile
	b        compute.Backend
	log      io.Writer
	start    time.Time
	cpu0     time.Duration
	m        *world.Manifest
	trainSet []train.Sample
	test     []world.Sample
	vocab    int
	eos      int
	assets   string
}

func (r *runner) phase(format string, a ...any) {
	fmt.Fprintf(r.log, "[%s wall, %s cpu] %s\n", fmtDur(time.Since(r.start)), fmtDur(cpuTime()-r.cpu0), fmt.Sprintf(format, a...))
}

func fmtDur(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	return fmt.Sprintf("%02d:%02d", s/60, s%60)
}

// Run executes the whole demo and returns its results (also written to Out/results.json and
// Out/results.md).
func Run(o Options) (*Results, error) {
	if o.Out == "" {
		return nil, errors.New("demo: no output folder")
	}
	if err := o.Profile.Validate(); err != nil {
		return nil, err
	}
	b, err := engine.Backend(o.Backend)
	if err != nil {
		return nil, err
	}
	r := &runner{o: o, p: o.Profile, b: b, log: o.Log, start: time.Now(), cpu0: cpuTime()}
	if r.log == nil {
		r.log = io.Discard
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	return r.run()
}

// Validate reports a profile the demo cannot run.
func (p Profile) Validate() error {
	if err := p.World.Validate(); err != nil {
		return err
	}
	switch {
	case p.Seeds < 1:
		return fmt.Errorf("demo: seeds must be >= 1, got %d", p.Seeds)
	case len(p.Methods) == 0:
		return errors.New("demo: no student methods")
	case p.EvalBatch < 1:
		return fmt.Errorf("demo: eval batch must be >= 1")
	case p.Teacher.Vision != p.Student.Vision:
		return errors.New("demo: teacher and student must share the vision tower's shape (the student's starts as a copy of the teacher's)")
	}
	for _, rc := range []Recipe{p.TeacherRecipe, p.StudentRecipe} {
		if rc.Steps < 1 || rc.GlobalBatch < 1 || rc.MicroBatch < 1 || rc.GlobalBatch%rc.MicroBatch != 0 || rc.LR <= 0 {
			return fmt.Errorf("demo: bad training recipe %+v", rc)
		}
	}
	seen := map[string]bool{}
	for _, m := range p.Methods {
		if m.Name == "" || seen[m.Name] || m.Name == TeacherRun {
			return fmt.Errorf("demo: bad or repeated method name %q", m.Name)
		}
		seen[m.Name] = true
		o := m.Objective
		for _, d := range []train.Divergence{o.Align, o.VSD} {
			if _, err := train.ParseDivergence(string(d)); err != nil {
				return fmt.Errorf("demo: method %s: %w", m.Name, err)
			}
		}
		if o.Tau <= 0 || o.WCE < 0 || o.WAlign < 0 || o.WVSD < 0 {
			return fmt.Errorf("demo: method %s: tau must be positive and weights >= 0", m.Name)
		}
	}
	return nil
}

func (r *runner) path(parts ...string) string {
	return filepath.Join(append([]string{r.o.Out}, parts...)...)
}

func (r *runner) run() (*Results, error) {
	p := r.p
	res := &Results{Profile: p, Backend: r.b.Name(), Started: r.start.UTC().Format(time.RFC3339)}

	// 1. World.
	r.phase("generating the world (%d train / %d val / %d test images, %d questions each) in %s",
		p.World.NumTrain, p.World.NumVal, p.World.NumTest, p.World.QuestionsPerImage, r.path(WorldDir))
	m, err := world.Generate(p.World, r.path(WorldDir))
	if err != nil {
		return nil, fmt.Errorf("demo: world: %w", err)
	}
	r.m = m
	r.test = r.evalSamples(m.Samples(world.SplitTest))
	res.World = WorldInfo{Hash: m.Hash, Train: len(m.Samples(world.SplitTrain)), Captions: len(m.Captions()),
		Test: len(m.Samples(world.SplitTest)), Evaluated: len(r.test)}
	res.Blind = typeScores(world.BlindBaseline(r.test))
	res.BlindQuestion = typeScores(world.BlindQuestionBaseline(m.Samples(world.SplitTrain), r.test))

	// 2. Tokenizer and shared assets.
	r.assets = r.path(AssetsDir)
	tok, vocab, err := WriteAssets(r.assets, m, p.VocabSize, p.World.ImageSize)
	if err != nil {
		return nil, fmt.Errorf("demo: tokenizer: %w", err)
	}
	r.vocab = vocab
	r.eos, _ = tok.TokenID(data.EOSText)
	r.phase("trained a byte-level BPE tokenizer: %d tokens (%s)", vocab, filepath.Join(r.assets, "tokenizer.json"))

	// 3. Training inputs, prepared once for every model (same tokenizer and preprocessing).
	var ws []world.Sample
	if p.Captions {
		ws = append(ws, m.Captions()...)
	}
	ws = append(ws, m.Samples(world.SplitTrain)...)
	samples := Singles(ws)
	if p.Pack {
		samples = Conversations(ws, p.World.Seed)
	}
	probe, err := NewModel(p.Student, vocab, r.eos, p.World.ImageSize, 0, nil, r.assets, r.b)
	if err != nil {
		return nil, err
	}
	pv, err := vlm.FromModel(probe, r.assets)
	if err != nil {
		return nil, err
	}
	if r.trainSet, err = train.PrepareSamples(samples, r.path(WorldDir), pv, nil); err != nil {
		return nil, fmt.Errorf("demo: preparing training samples: %w", err)
	}
	tokens := 0
	for _, s := range r.trainSet {
		tokens += len(s.Student.IDs) - 1 + probe.Config.NumImageFeatures()
	}
	r.phase("prepared %d training samples (%d rounds: %d captions + %d questions), %.0f tokens each on average with the %d image tokens",
		len(r.trainSet), len(ws), len(ws)-len(m.Samples(world.SplitTrain)), len(m.Samples(world.SplitTrain)),
		float64(tokens)/float64(len(r.trainSet)), probe.Config.NumImageFeatures())

	// 4. Teacher.
	teacher, err := NewModel(p.Teacher, vocab, r.eos, p.World.ImageSize, 1, nil, r.assets, r.b)
	if err != nil {
		return nil, err
	}
	res.TeacherParams, res.StudentParams = ParamCount(teacher), ParamCount(probe)
	r.phase("training the teacher from scratch (%s; %.2fM parameters): %d steps x %d samples, CE",
		p.Teacher, float64(res.TeacherParams)/1e6, p.TeacherRecipe.Steps, p.TeacherRecipe.GlobalBatch)
	obj := Methods()[0].Objective // CE only
	tdir, tsec, err := r.train(TeacherRun, teacher, nil, p.TeacherRecipe, obj, 0)
	if err != nil {
		return nil, fmt.Errorf("demo: teacher: %w", err)
	}
	tv, err := vlm.Load(tdir, r.o.Backend)
	if err != nil {
		return nil, fmt.Errorf("demo: reloading the teacher: %w", err)
	}
	tres, err := r.evaluate(TeacherRun, tv)
	if err != nil {
		return nil, err
	}
	tres.TrainSeconds = tsec
	res.Teacher = tres
	r.phase("teacher: average %.1f%% on %d test questions (blind baseline %.1f%%, blind per-question %.1f%%)",
		tres.Scores[AverageKey], len(r.test), res.Blind[AverageKey], res.BlindQuestion[AverageKey])
	if tres.Scores[AverageKey] <= res.Blind[AverageKey] {
		r.phase("WARNING: the teacher does not beat the text-only baseline; the comparison below means little")
	}

	// 5. Students.
	for seed := 0; seed < p.Seeds; seed++ {
		for _, meth := range p.Methods {
			name := StudentRun(meth.Name, seed)
			st, err := NewModel(p.Student, vocab, r.eos, p.World.ImageSize, uint64(1000+seed), tv.Model, r.assets, r.b)
			if err != nil {
				return nil, err
			}
			var te *tinyllava.Model
			if needsTeacher(meth.Objective) {
				te = tv.Model
			}
			r.phase("student %s, seed %d: %s", meth.Name, seed, meth.Label)
			sdir, sec, err := r.train(name, st, te, p.StudentRecipe, meth.Objective, uint64(seed))
			if err != nil {
				return nil, fmt.Errorf("demo: %s: %w", name, err)
			}
			sv, err := vlm.Load(sdir, r.o.Backend)
			if err != nil {
				return nil, fmt.Errorf("demo: reloading %s: %w", name, err)
			}
			sr, err := r.evaluate(name, sv)
			if err != nil {
				return nil, err
			}
			sr.Method, sr.Seed, sr.TrainSeconds = meth.Name, seed, sec
			res.Students = append(res.Students, sr)
			r.phase("%s: average %.1f%%", name, sr.Scores[AverageKey])
		}
	}

	// 6. Tables and plots.
	res.finish()
	res.Seconds = time.Since(r.start).Seconds()
	if err := res.write(r.o.Out); err != nil {
		return nil, err
	}
	r.phase("done: %s, %s, %s", r.path(ResultsMD), r.path(ResultsJS), r.path(BarChart))
	return res, nil
}

func needsTeacher(o train.Objective) bool {
	return (o.WAlign != 0 && o.Align != train.None) || (o.WVSD != 0 && o.VSD != train.None)
}

// evalSamples keeps the first EvalPerType test samples of each question type (all when 0).
func (r *runner) evalSamples(ss []world.Sample) []world.Sample {
	var out []world.Sample
	n := map[string]int{}
	for _, s := range ss {
		if s.Type == world.TypeCaption {
			continue
		}
		if r.p.EvalPerType > 0 && n[s.Type] >= r.p.EvalPerType {
			continue
		}
		n[s.Type]++
		out = append(out, s)
	}
	return out
}

// train runs one training job in runs/<name> and moves the final model to models/<name>.
func (r *runner) train(name string, student, teacher *tinyllava.Model, rc Recipe, obj train.Objective, seed uint64) (string, float64, error) {
	out := r.path(RunsDir, name)
	if err := os.RemoveAll(out); err != nil {
		return "", 0, err
	}
	tr := &train.Trainer{
		Student: student, Teacher: teacher,
		Stages: []train.Stage{{Name: name, Steps: rc.Steps, LR: rc.LR, WarmupRatio: rc.WarmupRatio,
			Train: []train.Module{train.Vision, train.Connector, train.LLM}, Objective: obj}},
		Opt: train.Options{Optimizer: train.DefaultAdamW(), GlobalBatch: rc.GlobalBatch, MicroBatch: rc.MicroBatch,
			SeqBucket: r.p.SeqBucket, PosBucket: r.p.PosBucket, Out: out, KeepLast: 1, Progress: r.o.Progress},
		Feed: &train.SliceFeed{Items: r.trainSet, Seed: seed},
	}
	began := time.Now()
	if err := tr.Run(); err != nil {
		return "", 0, err
	}
	sec := time.Since(began).Seconds()
	// The checkpoint (weights + optimizer moments) is only needed to resume: drop it.
	os.RemoveAll(filepath.Join(out, "checkpoints"))
	if err := train.PlotMetrics(filepath.Join(out, "metrics.jsonl"), filepath.Join(out, "loss_curves.png")); err != nil {
		return "", 0, err
	}
	dst := r.path(ModelsDir, name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", 0, err
	}
	os.RemoveAll(dst)
	if err := os.Rename(filepath.Join(out, "student"), dst); err != nil {
		return "", 0, err
	}
	return dst, sec, nil
}

// evaluate answers the test questions with v and scores them per type.
func (r *runner) evaluate(name string, v *vlm.VLM) (*ModelResult, error) {
	began := time.Now()
	var prog func(done, total int)
	if r.o.Progress != nil {
		prog = func(done, total int) {
			fmt.Fprintf(r.o.Progress, "\r  evaluating %s: %d/%d   ", name, done, total)
			if done == total {
				fmt.Fprintln(r.o.Progress)
			}
		}
	}
	met, preds, err := eval.RunWorld(v, r.test, r.path(WorldDir), r.p.EvalBatch, prog)
	if err != nil {
		return nil, fmt.Errorf("demo: evaluating %s: %w", name, err)
	}
	mr := &ModelResult{Name: name, Scores: map[string]float64{}, EvalSeconds: time.Since(began).Seconds()}
	for _, t := range world.QATypes {
		if x, ok := met.Get(t + "/accuracy"); ok {
			mr.Scores[t] = x
		}
	}
	mr.Scores[AverageKey], _ = met.Get("average")
	mr.Scores["exist/f1"], _ = met.Get("exist/f1")
	// Keep the answers beside the run's metrics.
	f, err := os.Create(r.path(RunsDir, name, "answers.jsonl"))
	if err != nil {
		return nil, err
	}
	enc := json.NewEncoder(f)
	for i, p := range preds {
		enc.Encode(map[string]any{"id": p.ID, "type": r.test[i].Type, "answer": r.test[i].Answer(), "prediction": p.Text,
			"correct": world.Correct(r.test[i].QA(), p.Text)})
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return mr, nil
}

// typeScores converts world baseline accuracies (fractions, per type and "all") to the results'
// percentages with the per-type average.
func typeScores(acc map[string]float64) map[string]float64 {
	out := map[string]float64{}
	sum, n := 0.0, 0
	for _, t := range world.QATypes {
		if x, ok := acc[t]; ok {
			out[t] = 100 * x
			sum += 100 * x
			n++
		}
	}
	if n > 0 {
		out[AverageKey] = sum / float64(n)
	}
	return out
}
