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
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/engine"
	"github.com/switchkd/switchkd/eval"
	"github.com/switchkd/switchkd/models/tinyllava"
	progressline "github.com/switchkd/switchkd/progress"
	"github.com/switchkd/switchkd/train"
	"github.com/switchkd/switchkd/vlm"
	"github.com/switchkd/switchkd/world"
)

// Options configure Run.
type Options struct {
	Out     string  // output folder
	Profile Profile // DefaultProfile or QuickProfile, possibly adjusted
	Backend string  // "" or "go": the pure-Go CPU backend; "xla[:cuda]" in cgo builds
	// Workers is how many students train at once (0: one per CPU, runtime.GOMAXPROCS).
	Workers int
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
	mu       sync.Mutex // phase lines come from concurrent student jobs
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
	r.mu.Lock()
	defer r.mu.Unlock()
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
	if p.Pretrain.Steps > 0 {
		if err := p.Pretrain.validate(); err != nil {
			return err
		}
	}
	for _, rc := range []Recipe{p.TeacherRecipe, p.StudentRecipe} {
		if err := rc.validate(); err != nil {
			return err
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

	// 4. Teacher, from the pre-trained vision tower.
	teacher, err := NewModel(p.Teacher, vocab, r.eos, p.World.ImageSize, 1, nil, r.assets, r.b)
	if err != nil {
		return nil, err
	}
	res.TeacherParams, res.StudentParams = ParamCount(teacher), ParamCount(probe)
	if p.Pretrain.Steps > 0 {
		if res.Pretrain, err = r.pretrain(teacher, pv.PP); err != nil {
			return nil, err
		}
	}
	tower := VisionTower(teacher) // every student starts from it
	// 5. Students, Workers jobs at a time; those without a teacher term start while the teacher
	// trains (it holds one of the slots).
	pool := r.startStudents(tower)
	tv, terr := r.teacher(teacher, res)
	var tm *tinyllava.Model
	if terr == nil {
		tm = tv.Model
	}
	pool.teacherDone(tm)
	students, serr := pool.wait()
	if terr != nil {
		return nil, terr
	}
	if serr != nil {
		return nil, serr
	}
	res.Students = students

	// 6. Tables and plots.
	res.finish()
	res.Seconds = time.Since(r.start).Seconds()
	if err := res.write(r.o.Out); err != nil {
		return nil, err
	}
	r.phase("done: %s, %s, %s", r.path(ResultsMD), r.path(ResultsJS), r.path(BarChart))
	return res, nil
}

// pretrain pre-trains m's vision tower on fresh scenes of the world, measured on the
// validation scenes.
func (r *runner) pretrain(m *tinyllava.Model, pp data.PreprocessConfig) (*PretrainResult, error) {
	rc := r.p.Pretrain
	cfg := r.p.World
	cfg.CharProb = rc.CharProb
	scenes, err := world.PretrainScenes(cfg, rc.Scenes, r.m)
	if err != nil {
		return nil, fmt.Errorf("demo: pre-training scenes: %w", err)
	}
	var val []*world.Scene
	for _, s := range r.m.Scenes() {
		if s.Split == world.SplitVal {
			val = append(val, s)
		}
	}
	r.phase("pre-training the vision tower (%s): %d steps x %d of %d fresh scenes; a linear probe names the shape, colour, size and character of each patch and each object",
		r.p.Teacher.VisionString(), rc.Steps, rc.Batch, len(scenes))
	res, err := PretrainVision(m, pp, scenes, val, rc, r.p.World.Seed, r.o.Progress)
	if err != nil {
		return nil, fmt.Errorf("demo: vision pre-training: %w", err)
	}
	var acc []string
	for _, h := range ProbeHeads() {
		acc = append(acc, fmt.Sprintf("%s %.1f%% (chance %.1f%%)", h.Name, res.HeldOut[h.Name], res.Chance[h.Name]))
	}
	r.phase("vision tower pre-trained: loss %.3f -> %.3f; probe on %d validation images: %s",
		res.FirstLoss, res.LastLoss, len(val), strings.Join(acc, ", "))
	return res, nil
}

// teacher trains the teacher with CE from its initial state, evaluates it into res.Teacher and
// checks it against res's text-only baselines.
func (r *runner) teacher(m *tinyllava.Model, res *Results) (*vlm.VLM, error) {
	p := r.p
	r.phase("training the teacher (%s; %.2fM parameters) with CE: %s", p.Teacher, float64(ParamCount(m))/1e6, p.TeacherRecipe)
	obj := Methods()[0].Objective // CE only
	progress := r.o.Progress
	if r.workers() > 1 {
		progress = nil // students train meanwhile
	}
	dir, sec, err := r.train(TeacherRun, m, nil, p.TeacherRecipe, obj, 0, progress)
	if err != nil {
		return nil, fmt.Errorf("demo: teacher: %w", err)
	}
	tv, err := vlm.Load(dir, r.o.Backend)
	if err != nil {
		return nil, fmt.Errorf("demo: reloading the teacher: %w", err)
	}
	if res.Teacher, err = r.evaluate(TeacherRun, tv, progress); err != nil {
		return nil, err
	}
	res.Teacher.TrainSeconds = sec
	// The same questions, each with another test image: how much the teacher's answers depend
	// on the picture.
	if res.TeacherShuffled, err = r.evaluateOn(TeacherRun, "answers_shuffled_images.jsonl", tv, ShuffledImages(r.test), progress); err != nil {
		return nil, err
	}
	r.phase("teacher: average %.1f%% on %d test questions, %.1f%% with shuffled images (blind baseline %.1f%%, blind per-question %.1f%%; trained in %s)",
		res.Teacher.Scores[AverageKey], len(r.test), res.TeacherShuffled.Scores[AverageKey], res.Blind[AverageKey], res.BlindQuestion[AverageKey],
		fmtDur(time.Duration(sec*float64(time.Second))))
	if err := res.CheckTeacher(0); err != nil {
		r.phase("WARNING: %v; the comparison below means little", err)
	}
	return tv, nil
}

// studentPool trains and evaluates every (seed, method) student, at most r.workers() jobs at a
// time; the teacher's training holds one slot until teacherDone.
type studentPool struct {
	r       *runner
	slots   chan struct{}
	ready   chan struct{} // closed by teacherDone
	teacher *tinyllava.Model
	wg      sync.WaitGroup
	out     []*ModelResult
	errs    []error
	order   []int // job index of each result, seed-major
}

func (r *runner) startStudents(tower map[string]*tensors.Tensor) *studentPool {
	p := r.p
	type job struct {
		seed int
		meth Method
	}
	// Jobs without a teacher term first: they need not wait for it.
	var jobs []job
	for _, withTeacher := range []bool{false, true} {
		for seed := 0; seed < p.Seeds; seed++ {
			for _, meth := range p.Methods {
				if needsTeacher(meth.Objective) == withTeacher {
					jobs = append(jobs, job{seed, meth})
				}
			}
		}
	}
	workers := min(r.workers(), len(jobs)+1)
	sp := &studentPool{r: r, slots: make(chan struct{}, workers), ready: make(chan struct{}),
		out: make([]*ModelResult, len(jobs)), errs: make([]error, len(jobs))}
	sp.slots <- struct{}{} // the teacher's
	progress := r.o.Progress
	if workers > 1 {
		progress = nil // concurrent progress bars would overwrite each other
		r.phase("%d students will train %d at a time (%d beside the teacher)", len(jobs), workers, workers-1)
	}
	next := make(chan int, len(jobs))
	for i := range jobs {
		next <- i
	}
	close(next)
	var failed atomic.Bool
	for w := 0; w < workers; w++ {
		sp.wg.Add(1)
		go func() {
			defer sp.wg.Done()
			for i := range next {
				j := jobs[i]
				var teacher *tinyllava.Model
				if needsTeacher(j.meth.Objective) {
					<-sp.ready
					if teacher = sp.teacher; teacher == nil {
						failed.Store(true) // the teacher failed: its error is reported
					}
				}
				if failed.Load() {
					continue // drain: one failure ends the phase
				}
				sp.slots <- struct{}{}
				sp.out[i], sp.errs[i] = r.student(j.meth, j.seed, tower, teacher, progress)
				<-sp.slots
				if sp.errs[i] != nil {
					failed.Store(true)
				}
			}
		}()
	}
	// Results in seed-major, method order.
	order := make([]int, len(jobs))
	for i, j := range jobs {
		order[j.seed*len(p.Methods)+slices.IndexFunc(p.Methods, func(m Method) bool { return m.Name == j.meth.Name })] = i
	}
	sp.order = order
	return sp
}

// teacherDone hands the trained teacher (nil when its training failed) to the jobs that wait
// for it and frees its slot.
func (sp *studentPool) teacherDone(t *tinyllava.Model) {
	sp.teacher = t
	close(sp.ready)
	<-sp.slots
}

// wait returns every student's result in seed-major, method order.
func (sp *studentPool) wait() ([]*ModelResult, error) {
	sp.wg.Wait()
	if err := errors.Join(sp.errs...); err != nil {
		return nil, err
	}
	out := make([]*ModelResult, len(sp.order))
	for k, i := range sp.order {
		out[k] = sp.out[i]
	}
	if slices.Contains(out, nil) {
		return nil, errors.New("demo: a student job did not run")
	}
	return out, nil
}

// workers is how many students train at once: Options.Workers, or one per CPU the process may
// use (each job runs its graphs one op at a time, so a job keeps about one core busy).
func (r *runner) workers() int {
	if r.o.Workers > 0 {
		return r.o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// student trains one student from the pre-trained tower and evaluates it.
func (r *runner) student(meth Method, seed int, tower map[string]*tensors.Tensor, teacher *tinyllava.Model, progress io.Writer) (*ModelResult, error) {
	p := r.p
	name := StudentRun(meth.Name, seed)
	st, err := NewModel(p.Student, r.vocab, r.eos, p.World.ImageSize, uint64(1000+seed), tower, r.assets, r.b)
	if err != nil {
		return nil, err
	}
	if !needsTeacher(meth.Objective) {
		teacher = nil
	}
	r.phase("student %s, seed %d: %s", meth.Name, seed, meth.Label)
	sdir, sec, err := r.train(name, st, teacher, p.StudentRecipe, meth.Objective, uint64(seed), progress)
	if err != nil {
		return nil, fmt.Errorf("demo: %s: %w", name, err)
	}
	sv, err := vlm.Load(sdir, r.o.Backend)
	if err != nil {
		return nil, fmt.Errorf("demo: reloading %s: %w", name, err)
	}
	sr, err := r.evaluate(name, sv, progress)
	if err != nil {
		return nil, err
	}
	sr.Method, sr.Seed, sr.TrainSeconds = meth.Name, seed, sec
	r.phase("%s: average %.1f%% (trained in %s, evaluated in %s)", name, sr.Scores[AverageKey],
		fmtDur(time.Duration(sec*float64(time.Second))), fmtDur(time.Duration(sr.EvalSeconds*float64(time.Second))))
	return sr, nil
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
func (r *runner) train(name string, student, teacher *tinyllava.Model, rc Recipe, obj train.Objective, seed uint64, progress io.Writer) (string, float64, error) {
	out := r.path(RunsDir, name)
	if err := os.RemoveAll(out); err != nil {
		return "", 0, err
	}
	var stages []train.Stage
	for i, st := range rc.Stages {
		stages = append(stages, train.Stage{Name: fmt.Sprintf("%s/%d", name, i+1), Steps: st.Steps, LR: st.LR,
			WarmupRatio: st.WarmupRatio, Train: st.modules(), Objective: obj})
	}
	if len(stages) == 1 {
		stages[0].Name = name
	}
	tr := &train.Trainer{
		Student: student, Teacher: teacher,
		Stages: stages,
		// One chunk per micro-batch: the demo runs whole jobs side by side instead (see
		// startStudents), and the results do not depend on the number of cores.
		Opt: train.Options{Optimizer: train.DefaultAdamW(), GlobalBatch: rc.GlobalBatch, MicroBatch: rc.MicroBatch, Concurrent: 1,
			SeqBucket: r.p.SeqBucket, PosBucket: r.p.PosBucket, Out: out, KeepLast: 1, Progress: progress},
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
func (r *runner) evaluate(name string, v *vlm.VLM, progress io.Writer) (*ModelResult, error) {
	return r.evaluateOn(name, "answers.jsonl", v, r.test, progress)
}

// evaluateOn answers the questions of test with v, scores them per type and writes the answers
// to runs/<name>/<answers>.
func (r *runner) evaluateOn(name, answers string, v *vlm.VLM, test []world.Sample, progress io.Writer) (*ModelResult, error) {
	began := time.Now()
	var prog func(done, total int)
	if progress != nil {
		line := progressline.New(progress)
		prog = func(done, total int) {
			line.Set("  evaluating %s: %d/%d", name, done, total)
			if done == total {
				line.Done()
			}
		}
	}
	met, preds, err := eval.RunWorld(v, test, r.path(WorldDir), r.p.EvalBatch, prog)
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
	f, err := os.Create(r.path(RunsDir, name, answers))
	if err != nil {
		return nil, err
	}
	enc := json.NewEncoder(f)
	for i, p := range preds {
		enc.Encode(map[string]any{"id": p.ID, "image": test[i].Image, "type": test[i].Type, "answer": test[i].Answer(), "prediction": p.Text,
			"correct": world.Correct(test[i].QA(), p.Text)})
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return mr, nil
}

// ShuffledImages returns the samples with each one's image replaced by the next distinct image
// among them (cyclically, in order of first appearance): the same questions and answers about
// the wrong picture.
func ShuffledImages(ss []world.Sample) []world.Sample {
	var order []string
	idx := map[string]int{}
	for _, s := range ss {
		if _, ok := idx[s.Image]; !ok {
			idx[s.Image] = len(order)
			order = append(order, s.Image)
		}
	}
	out := slices.Clone(ss)
	for i := range out {
		out[i].Image = order[(idx[out[i].Image]+1)%len(order)]
	}
	return out
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
