package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/models/tinyllava"
	"github.com/switchkd/switchkd/progress"
)

// Stage is one phase of training (TinyLLaVA's stage 1 trains the connector with CE; stage 2
// distils with Switch-KD).
type Stage struct {
	Name        string    `yaml:"name"`
	Steps       int       `yaml:"steps"`
	LR          float64   `yaml:"lr"`
	WarmupRatio float64   `yaml:"warmup_ratio"`
	Train       []Module  `yaml:"train"`
	Objective   Objective `yaml:"-"`
}

// Sample is one training example as both models see it.
type Sample struct {
	Student, Teacher tinyllava.Input
}

// Feed yields training samples in a fixed, resumable order.
type Feed interface {
	// Next returns the next sample; it never ends (epochs wrap around).
	Next() (Sample, error)
	// Position returns the state needed to resume the sequence exactly; Seek restores it.
	Position() FeedPosition
	Seek(FeedPosition) error
	Close()
}

// FeedPosition is an epoch and an offset into that epoch's seeded permutation.
type FeedPosition struct {
	Epoch int `json:"epoch"`
	Index int `json:"index"`
}

// Options are the trainer's settings beyond the stages.
type Options struct {
	Optimizer   AdamW
	GlobalBatch int // samples per optimizer step
	MicroBatch  int // samples per forward/backward (GlobalBatch is a multiple of it)
	// Concurrent splits each micro-batch into up to this many chunks, whose forward/backward
	// passes run concurrently (0: GOMAXPROCS). The go backend runs most element-wise ops on
	// one core, so concurrent chunks keep the others busy; peak activation memory stays that
	// of one micro-batch. The loss is normalised by the global batch's token counts, so the
	// split changes only the order of float32 sums, and it is deterministic.
	Concurrent int
	SeqBucket  int // sequence lengths are rounded up to a multiple of this
	PosBucket  int // supervised-position counts are rounded up to a multiple of this
	Out        string
	SaveEvery  int // checkpoint every N optimizer steps (0: only at the end)
	KeepLast   int // checkpoints to keep
	LogEvery   int
	Progress   io.Writer // progress bar (nil: none)
	// StopAfter ends Run with ErrStopped after this many global steps (0: never): a clean
	// stand-in for a killed process, used to test resuming.
	StopAfter int
	// GraphOptimizer runs AdamW as backend graphs even where the backend's buffers are host
	// memory (the go backend), where it otherwise runs as one fused in-place pass per
	// parameter on every core. Other backends (XLA) always use the graphs.
	GraphOptimizer bool
}

// ErrStopped is returned by Run when Options.StopAfter ends it early.
var ErrStopped = errors.New("training stopped early (StopAfter)")

// Trainer distils Student from Teacher (Teacher may be nil for SFT-only stages).
type Trainer struct {
	Student, Teacher *tinyllava.Model
	Stages           []Stage
	Opt              Options
	Feed             Feed

	// state
	stage, step int // current stage and optimizer steps done in it
	globalStep  int
	m, v        map[string]*tensors.Tensor
	line        *progress.Line
	metrics     *os.File
	start       time.Time
	tokensSeen  int
	resumedAt   int
	host        *hostAdamW // nil: AdamW runs as graphs
}

// Metrics is one line of metrics.jsonl.
type Metrics struct {
	Step      int     `json:"step"` // global optimizer step, 1-based
	Stage     string  `json:"stage"`
	StageStep int     `json:"stage_step"`
	Total     float64 `json:"total"`
	CE        float64 `json:"ce"`
	Align     float64 `json:"align"`
	VSD       float64 `json:"vsd"`
	LR        float64 `json:"lr"`
	GradNorm  float64 `json:"grad_norm"`
	Tokens    int     `json:"tokens"`
	TokPerSec float64 `json:"tokens_per_s"`
	StepSec   float64 `json:"step_s"`
	OptSec    float64 `json:"optimizer_s"` // of StepSec: gradient clipping and the AdamW update
}

// Run trains every stage from the current state (fresh, or as restored by Resume) and saves
// the final student in TinyLLaVA Hugging Face layout under Opt.Out/student.
func (t *Trainer) Run() error {
	if err := t.validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(t.Opt.Out, 0o755); err != nil {
		return err
	}
	if err := t.openMetrics(); err != nil {
		return err
	}
	defer t.metrics.Close()
	t.start = time.Now()
	t.line = progress.New(t.Opt.Progress)
	if hostOptimizer(t.Student.Backend, t.Opt) && t.host == nil {
		t.host = &hostAdamW{backend: t.Student.Backend, owned: map[*tensors.Tensor]bool{}}
	}
	for ; t.stage < len(t.Stages); t.stage, t.step = t.stage+1, 0 {
		st := t.Stages[t.stage]
		if t.m == nil {
			t.resetOptimizer(st)
		}
		if err := t.onBackend(); err != nil {
			return err
		}
		g, err := t.newStepGraph(st)
		if err != nil {
			return err
		}
		sched := Schedule{PeakLR: st.LR, Total: st.Steps, WarmupRatio: st.WarmupRatio}
		for t.step < st.Steps {
			m, err := t.trainStep(g, sched.LR(t.step))
			if err != nil {
				return fmt.Errorf("stage %q step %d: %w", st.Name, t.step+1, err)
			}
			t.step++
			t.globalStep++
			m.Stage, m.StageStep, m.Step = st.Name, t.step, t.globalStep
			if err := t.log(m, st); err != nil {
				return err
			}
			last := t.stage == len(t.Stages)-1 && t.step == st.Steps
			if (t.Opt.SaveEvery > 0 && t.globalStep%t.Opt.SaveEvery == 0) || last {
				if err := t.checkpoint(); err != nil {
					return err
				}
			}
			if t.Opt.StopAfter > 0 && t.globalStep >= t.Opt.StopAfter {
				return ErrStopped
			}
		}
		t.m, t.v = nil, nil // a new stage starts with a fresh optimizer
	}
	t.line.Done()
	return t.Student.Save(filepath.Join(t.Opt.Out, "student"), "F32", t.Student.Dir)
}

func (t *Trainer) validate() error {
	if t.Opt.MicroBatch <= 0 || t.Opt.GlobalBatch <= 0 || t.Opt.GlobalBatch%t.Opt.MicroBatch != 0 {
		return fmt.Errorf("global batch %d must be a positive multiple of the micro batch %d", t.Opt.GlobalBatch, t.Opt.MicroBatch)
	}
	for _, st := range t.Stages {
		if st.Steps <= 0 {
			return fmt.Errorf("stage %q: steps must be positive", st.Name)
		}
		if len(st.Train) == 0 {
			return fmt.Errorf("stage %q: no module is trained", st.Name)
		}
		needT := (st.Objective.WAlign != 0 && st.Objective.Align != "none") || (st.Objective.WVSD != 0 && st.Objective.VSD != "none")
		if needT && t.Teacher == nil {
			return fmt.Errorf("stage %q: the objective needs a teacher (align %s, vsd %s) but none is given", st.Name, st.Objective.Align, st.Objective.VSD)
		}
		if needT && st.Objective.WVSD != 0 && st.Objective.VSD != "none" {
			if err := checkSwitch(t.Student.Config, t.Teacher.Config); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *Trainer) resetOptimizer(st Stage) {
	t.m, t.v = map[string]*tensors.Tensor{}, map[string]*tensors.Tensor{}
	mods := map[Module]bool{}
	for _, m := range st.Train {
		mods[m] = true
	}
	for _, n := range trainableNames(t.Student, mods) {
		shape := t.Student.Params.T[n].Shape()
		t.m[n], t.v[n] = t.zeros(shape), t.zeros(shape)
	}
}

// zeros is a zero moment: host memory the host optimizer owns, or a host tensor that onBackend
// moves to the backend.
func (t *Trainer) zeros(shape shapes.Shape) *tensors.Tensor {
	if t.host != nil {
		if z, err := tensors.FromShapeForBackend(t.host.backend, 0, shape); err == nil && z.IsShared() {
			t.host.owned[z] = true
			return z
		}
	}
	return tensors.FromShape(shape)
}

// onBackend moves every parameter and optimizer moment that is still a host tensor (restored
// from a checkpoint, set by a caller) to the backend, once. Concurrent executions share these
// tensors, and two executions transferring the same host tensor at once race.
func (t *Trainer) onBackend() error {
	maps := []map[string]*tensors.Tensor{t.Student.Params.T, t.m, t.v}
	if t.Teacher != nil {
		maps = append(maps, t.Teacher.Params.T)
	}
	for _, m := range maps {
		for n, x := range m {
			if x.IsOnDevice(0) {
				continue
			}
			if err := x.ToDevice(t.Student.Backend, 0); err != nil {
				return fmt.Errorf("moving %s to the backend: %w", n, err)
			}
		}
	}
	return nil
}

// pairGrads runs the gradient graph on one chunk: the gradients of the trainable parameters,
// then the three term sums.
func (t *Trainer) pairGrads(c *compiled, p *Pair, ceScale, kdScale float64) ([]*tensors.Tensor, error) {
	e, err := t.gradExec(c, p.key())
	if err != nil {
		return nil, err
	}
	args := t.Student.ParamArgs()
	if c.teacher {
		args = append(args, c.sg.teacherArgs()...)
	}
	args = append(args, p.Student.Args(t.Student.Config)...)
	if c.teacher {
		args = append(args, p.Teacher.Args(t.Teacher.Config)...)
	}
	args = append(args, vec(p.CEPos), vec(p.CETargets), vec(p.CEWeights), tensors.FromScalar(ceScale))
	if c.teacher {
		args = append(args, vec(p.KDStudent), vec(p.KDTeacher), vec(p.KDWeights), tensors.FromScalar(kdScale))
	}
	return e.Exec(args...)
}

// compiled holds a stage's executables.
type compiled struct {
	sg   *stepGraph
	grad map[graphKey]*Exec
	// The optimizer runs as concurrent groups of parameters (indices into sg.trainable), each
	// with an executable for its gradients' sum of squares and one for its AdamW update (none
	// when AdamW runs on the host).
	groups        [][]int
	sumSq, update []*Exec
	add           *Exec
	teacher       bool
	gradMu        sync.Mutex // guards grad: chunks of a step ask for their executable concurrently
}

func (t *Trainer) newStepGraph(st Stage) (*compiled, error) {
	mods := map[Module]bool{}
	for _, m := range st.Train {
		mods[m] = true
	}
	sg := &stepGraph{student: t.Student, teacher: t.Teacher, obj: st.Objective, trainable: trainableNames(t.Student, mods)}
	if len(sg.trainable) == 0 {
		return nil, fmt.Errorf("stage %q: the trained modules %v hold no parameters the model uses", st.Name, st.Train)
	}
	if err := sg.prepareTwins(); err != nil {
		return nil, err
	}
	c := &compiled{sg: sg, teacher: sg.needTeacher(), grad: map[graphKey]*Exec{}}
	var err error
	names := sg.trainable
	n := len(names)
	opt := t.Opt.Optimizer
	sizes := make([]int, n)
	for i, name := range names {
		sizes[i] = t.Student.Params.T[name].Shape().Size()
	}
	if t.host == nil { // else AdamW runs on the host: no optimizer graphs
		c.groups = balancedGroups(sizes, t.concurrent())
	}
	for _, grp := range c.groups {
		gNames := make([]string, len(grp))
		for j, i := range grp {
			gNames[j] = names[i]
		}
		k := len(grp)
		sumSq, err := NewExec(t.Student.Backend, func(g []*Node) *Node { return SumSquares(g) })
		if err != nil {
			return nil, err
		}
		update, err := NewExec(t.Student.Backend, func(in []*Node) []*Node {
			p, g, m, v := in[:k], in[k:2*k], in[2*k:3*k], in[3*k:4*k]
			np, nm, nv := opt.Apply(gNames, p, g, m, v, in[4*k], in[4*k+1], in[4*k+2])
			return append(append(np, nm...), nv...)
		})
		if err != nil {
			return nil, err
		}
		c.sumSq, c.update = append(c.sumSq, sumSq), append(c.update, update)
	}
	c.add, err = NewExec(t.Student.Backend, func(in []*Node) []*Node {
		out := make([]*Node, n)
		for i := range out {
			out[i] = Add(in[i], in[n+i])
		}
		return out
	})
	return c, err
}

// gradExec returns the gradient executable for a micro-batch's graph variant (graphKey),
// compiled on first use.
func (t *Trainer) gradExec(c *compiled, key graphKey) (*Exec, error) {
	c.gradMu.Lock()
	defer c.gradMu.Unlock()
	if e, ok := c.grad[key]; ok {
		return e, nil
	}
	e, err := NewExec(t.Student.Backend, c.sg.build(key))
	if err != nil {
		return nil, err
	}
	c.grad[key] = e
	return e, nil
}

// concurrent is the number of micro-batch chunks run at once (Options.Concurrent).
func (t *Trainer) concurrent() int {
	if t.Opt.Concurrent > 0 {
		return t.Opt.Concurrent
	}
	return runtime.GOMAXPROCS(0)
}

func (t *Trainer) trainStep(c *compiled, lr float64) (Metrics, error) {
	began := time.Now()
	var pairs []*Pair
	ceTok, kdTok := 0, 0
	var tc *tinyllava.Config
	if c.teacher {
		tc = t.Teacher.Config
	}
	for i := 0; i < t.Opt.GlobalBatch/t.Opt.MicroBatch; i++ {
		var sIn, tIn []tinyllava.Input
		for j := 0; j < t.Opt.MicroBatch; j++ {
			s, err := t.Feed.Next()
			if err != nil {
				return Metrics{}, err
			}
			sIn, tIn = append(sIn, s.Student), append(tIn, s.Teacher)
		}
		for _, ch := range Chunks(len(sIn), t.concurrent()) {
			p, err := NewPair(t.Student.Config, tc, sIn[ch[0]:ch[1]], tIn[ch[0]:ch[1]], t.Opt.SeqBucket, t.Opt.PosBucket)
			if err != nil {
				return Metrics{}, err
			}
			pairs = append(pairs, p)
			ceTok += p.CETokens
			kdTok += p.KDTokens
		}
	}
	ceScale, kdScale := 1/float64(max(1, ceTok)), 1/float64(max(1, kdTok))
	var acc []*tensors.Tensor
	var sums Terms
	n := len(c.sg.trainable)
	// Chunks run w at a time; their gradients are summed in chunk order, so the result does
	// not depend on which finishes first.
	for lo := 0; lo < len(pairs); lo += t.concurrent() {
		group := pairs[lo:min(len(pairs), lo+t.concurrent())]
		outs := make([][]*tensors.Tensor, len(group))
		err := Parallel(len(group), 0, func(k int) (err error) {
			outs[k], err = t.pairGrads(c, group[k], ceScale, kdScale)
			return err
		})
		if err != nil {
			return Metrics{}, err
		}
		for _, out := range outs {
			grads, terms := out[:n], out[n:]
			sums.CE += tensors.ToScalar[float64](terms[0])
			sums.Align += tensors.ToScalar[float64](terms[1])
			sums.VSD += tensors.ToScalar[float64](terms[2])
			if acc == nil {
				acc = grads
				continue
			}
			in := make([]any, 0, 2*n)
			for _, a := range acc {
				d, err := DonateTensorBuffer(a, t.Student.Backend, 0)
				if err != nil {
					return Metrics{}, err
				}
				in = append(in, d)
			}
			for _, g := range grads {
				in = append(in, g)
			}
			var err error
			if acc, err = c.add.Exec(in...); err != nil {
				return Metrics{}, err
			}
		}
	}
	optStart := time.Now()
	norm, err := t.optimize(c, acc, lr)
	if err != nil {
		return Metrics{}, err
	}
	optSec := time.Since(optStart).Seconds()
	o := c.sg.obj
	m := Metrics{CE: sums.CE * ceScale, Align: sums.Align * kdScale, VSD: sums.VSD * kdScale, LR: lr, GradNorm: norm, Tokens: ceTok}
	m.Total = o.WCE*m.CE + o.WAlign*m.Align + o.WVSD*m.VSD
	m.StepSec, m.OptSec = time.Since(began).Seconds(), optSec
	m.TokPerSec = float64(ceTok) / math.Max(m.StepSec, 1e-9)
	return m, nil
}

// optimize clips the accumulated gradients acc (in sg.trainable order) by their global norm
// and applies AdamW, each parameter group in its own goroutine; it returns the norm before
// clipping. Parameters, gradients and moments are donated: the backend may update them in
// place instead of holding old and new copies at once.
func (t *Trainer) optimize(c *compiled, acc []*tensors.Tensor, lr float64) (float64, error) {
	if t.host != nil {
		return t.optimizeHost(c, acc, lr)
	}
	names := c.sg.trainable
	parallel := func(fn func(k int) error) error { return Parallel(len(c.groups), 0, fn) }
	sums := make([]float64, len(c.groups))
	err := parallel(func(k int) error {
		in := make([]any, len(c.groups[k]))
		for j, i := range c.groups[k] {
			in[j] = acc[i]
		}
		out, err := c.sumSq[k].Exec(in...)
		if err == nil {
			sums[k] = tensors.ToScalar[float64](out[0])
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	var total float64
	for _, s := range sums { // in group order: deterministic
		total += s
	}
	norm := math.Sqrt(total)
	scale := float32(t.Opt.Optimizer.ClipScale(norm))
	outs := make([][]*tensors.Tensor, len(c.groups))
	err = parallel(func(k int) error {
		grp := c.groups[k]
		args := make([]any, 0, 4*len(grp)+3)
		for _, src := range []func(i int) *tensors.Tensor{
			func(i int) *tensors.Tensor { return t.Student.Params.T[names[i]] },
			func(i int) *tensors.Tensor { return acc[i] },
			func(i int) *tensors.Tensor { return t.m[names[i]] },
			func(i int) *tensors.Tensor { return t.v[names[i]] },
		} {
			for _, i := range grp {
				d, err := DonateTensorBuffer(src(i), t.Student.Backend, 0)
				if err != nil {
					return err
				}
				args = append(args, d)
			}
		}
		// Scalars are made per group: a host tensor shared by concurrent executions is
		// transferred to the backend by both at once, which races.
		var err error
		outs[k], err = c.update[k].Exec(append(args, tensors.FromScalar(float32(lr)),
			tensors.FromScalar(float32(t.step+1)), tensors.FromScalar(scale))...)
		return err
	})
	if err != nil {
		return 0, err
	}
	for k, grp := range c.groups {
		for j, i := range grp {
			t.Student.Params.T[names[i]] = outs[k][j]
			t.m[names[i]] = outs[k][len(grp)+j]
			t.v[names[i]] = outs[k][2*len(grp)+j]
		}
	}
	return norm, nil
}

// optimizeHost is optimize on the host: the global norm and the AdamW update as fused passes
// over host memory on every core, parameters and moments updated in place (see hostadamw.go).
func (t *Trainer) optimizeHost(c *compiled, acc []*tensors.Tensor, lr float64) (float64, error) {
	names := c.sg.trainable
	n := len(names)
	grads, params, ms, vs := make([][]float32, n), make([][]float32, n), make([][]float32, n), make([][]float32, n)
	rowLen, ones, sizes := make([]int, n), make([]int, n), make([]int, n)
	for i, name := range names {
		var err error
		if grads[i], err = flat(acc[i]); err != nil {
			return 0, fmt.Errorf("gradient of %s: %w", name, err)
		}
		dims := acc[i].Shape().Dimensions
		rowLen[i], ones[i], sizes[i] = 1, 1, len(grads[i])
		if len(dims) > 1 {
			rowLen[i] = dims[len(dims)-1]
		}
		for k, mp := range []map[string]*tensors.Tensor{t.Student.Params.T, t.m, t.v} {
			x, err := t.host.own(mp[name])
			if err != nil {
				return 0, fmt.Errorf("optimizer state of %s: %w", name, err)
			}
			mp[name] = x
			f, err := flat(x)
			if err != nil {
				return 0, fmt.Errorf("optimizer state of %s: %w", name, err)
			}
			if len(f) != len(grads[i]) {
				return 0, fmt.Errorf("optimizer state of %s: %d values, its gradient has %d", name, len(f), len(grads[i]))
			}
			[][][]float32{params, ms, vs}[k][i] = f
		}
	}
	opt := t.Opt.Optimizer
	norm := math.Sqrt(sumSquaresHost(grads, rowLen))
	s := opt.scalars(float32(lr), float32(t.step+1), float32(opt.ClipScale(norm)))
	runHost(splitHost(sizes, ones), func(w hostWork) {
		i := w.t
		decays := opt.WeightDecay > 0 && Decays(names[i], len(acc[i].Shape().Dimensions))
		applyHost(params[i][w.lo:w.hi], grads[i][w.lo:w.hi], ms[i][w.lo:w.hi], vs[i][w.lo:w.hi], decays, s)
	})
	// The gradients' buffers go back to the backend's pool for the next step (as the graph
	// path's donated buffers do) instead of waiting for the garbage collector.
	for _, a := range acc {
		if err := a.FinalizeAll(); err != nil {
			return 0, err
		}
	}
	return norm, nil
}

// balancedGroups splits indices 0..len(sizes)-1 into at most k non-empty groups of similar
// total size (largest first onto the lightest group; ties to the lower group), each group's
// indices ascending.
func balancedGroups(sizes []int, k int) [][]int {
	order := make([]int, len(sizes))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return sizes[order[a]] > sizes[order[b]] })
	k = max(1, min(k, len(sizes)))
	groups := make([][]int, k)
	load := make([]int, k)
	for _, i := range order {
		best := 0
		for g := 1; g < k; g++ {
			if load[g] < load[best] {
				best = g
			}
		}
		groups[best] = append(groups[best], i)
		load[best] += sizes[i]
	}
	for _, g := range groups {
		sort.Ints(g)
	}
	return groups
}

func vec[T float32 | int32](v []T) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(v, len(v))
}

func (t *Trainer) log(m Metrics, st Stage) error {
	t.tokensSeen += m.Tokens
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := t.metrics.Write(append(b, '\n')); err != nil {
		return err
	}
	total := 0
	for _, s := range t.Stages {
		total += s.Steps
	}
	// The ETA counts the steps run by this process (a resumed run starts its clock anew).
	eta := progress.ETA(t.start, t.globalStep-t.resumedAt, total-t.resumedAt)
	t.line.Set("%s %s step %d/%d | total %.4f ce %.4f align %.4f vsd %.4f | lr %.2e | %.0f tok/s | ETA %s",
		progress.Bar(t.globalStep, total, 20), st.Name, t.step, st.Steps, m.Total, m.CE, m.Align, m.VSD, m.LR, m.TokPerSec, eta)
	return nil
}

// Shuffle returns the seeded permutation of n items for an epoch.
func Shuffle(n int, seed uint64, epoch int) []int {
	return rand.New(rand.NewPCG(seed, uint64(epoch)+0x51ed)).Perm(n)
}
