package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchkd/switchkd/eval"
	"github.com/switchkd/switchkd/vlm"
)

func init() {
	register(&command{
		name: "eval",
		summary: "Answer a benchmark's questions with a model (batched greedy decoding, LLaVA/TinyLLaVA prompts) and score them.\n" +
			"Answers are appended to OUT/answers.jsonl batch by batch; a rerun skips the questions already answered.\n" +
			"Then the answers are scored (when annotations are given or the task needs none), OUT/results.json is\n" +
			"written and a Markdown table printed. With --answers, an existing answers file is scored without a model.\n" +
			"With --bench B1,B2,..., generation speed is measured for each batch size, side by side, and nothing is written.\n" +
			"Tasks: " + strings.Join(eval.Names(), ", ") + ", world (the synthetic world's test.json; alias synthetic).",
		usage: "--model DIR --task NAME --questions FILE --images DIR [--annotations PATH] --out DIR [--batch-size N] [--max-new-tokens N] [--limit N] [--all-rounds] [--backend go]\n" +
			"       switchkd eval --task NAME --answers FILE [--annotations PATH] [--out DIR]\n" +
			"       switchkd eval --bench 1,8 --model DIR --task NAME --questions FILE --images DIR [--limit N] [--max-new-tokens N] [--bench-repeats N]",
		setup: func(fs *flag.FlagSet) func([]string) error {
			var o evalOptions
			fs.StringVar(&o.model, "model", "", "TinyLLaVA model folder")
			fs.StringVar(&o.task, "task", "", "benchmark: "+strings.Join(eval.Names(), ", ")+", or world")
			fs.StringVar(&o.questions, "questions", "", "question file: LLaVA question JSON lines (question_id, image, text), the MMBench TSV,\nScienceQA's llava_test_CQM-A.json (or its problems.json folder), MMMU's anns_for_eval.json, the world's test.json")
			fs.StringVar(&o.images, "images", "", "folder the questions' image paths are relative to (not for MMBench; default for world: the questions' folder)")
			fs.StringVar(&o.annotations, "annotations", "", "ground truth for scoring (see the task's layout in the eval package); default: the question file\nfor mmbench, world, ScienceQA's problems.json folder and an MMMU file with answers")
			fs.StringVar(&o.out, "out", "", "output folder: answers.jsonl, results.json")
			fs.StringVar(&o.answers, "answers", "", "score this existing answers file instead of generating")
			fs.IntVar(&o.batch, "batch-size", 8, "questions per generation batch")
			fs.IntVar(&o.maxNew, "max-new-tokens", 0, "most tokens per answer (0: 16 for world, 128 otherwise, as LLaVA's scripts)")
			fs.IntVar(&o.limit, "limit", 0, "answer only the first N questions (0: all)")
			fs.BoolVar(&o.allRounds, "all-rounds", false, "MMBench: ask every rotation of the options (circular evaluation, LLaVA's --all-rounds)")
			fs.StringVar(&o.bench, "bench", "", "comma-separated batch sizes: measure answered questions per second for each, nothing written")
			fs.IntVar(&o.benchRepeats, "bench-repeats", 1, "with --bench: passes over the questions per batch size (interleaved)")
			o.backend = backendFlag(fs)
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				o.set = map[string]bool{}
				fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
				return runEval(&o, stdout, fs.Output())
			}
		},
	})
}

type evalOptions struct {
	model, task, questions, images, annotations, out, answers, bench string
	batch, maxNew, limit, benchRepeats                               int
	allRounds                                                        bool
	backend                                                          *string
	set                                                              map[string]bool

	world    bool       // the synthetic world task
	taskName string     // canonical task name
	t        *eval.Task // nil for world
	stdout   io.Writer  // table output
	stderr   io.Writer  // progress and notes
}

// worldTask reports whether name selects the synthetic world evaluation.
func worldTask(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	return n == "world" || n == "synthetic"
}

func runEval(o *evalOptions, stdout, stderr io.Writer) error {
	o.stdout, o.stderr = stdout, stderr
	if o.task == "" {
		return usagef("--task is required")
	}
	if worldTask(o.task) {
		o.world, o.taskName = true, "world"
	} else {
		t, err := eval.Lookup(o.task)
		if err != nil {
			return usagef("%v", err)
		}
		o.t, o.taskName = t, t.Name
	}
	conflict := func(mode string, names ...string) error {
		for _, n := range names {
			if o.set[n] {
				return usagef("--%s cannot be used with %s", n, mode)
			}
		}
		return nil
	}
	if o.batch < 1 {
		return usagef("--batch-size must be at least 1")
	}
	if o.maxNew < 0 || o.limit < 0 {
		return usagef("--max-new-tokens and --limit must not be negative")
	}
	if o.benchRepeats < 1 {
		return usagef("--bench-repeats must be at least 1")
	}
	if o.allRounds && o.taskName != "mmbench" && o.taskName != "mmbench_cn" {
		return usagef("--all-rounds is for mmbench and mmbench_cn only")
	}
	if o.maxNew == 0 {
		o.maxNew = 128
		if o.world {
			o.maxNew = eval.WorldMaxNewTokens
		}
	}
	switch {
	case o.set["answers"]:
		if o.answers == "" {
			return usagef("--answers is empty")
		}
		if err := conflict("--answers (scoring an existing answers file)", "model", "questions", "images", "batch-size",
			"max-new-tokens", "limit", "all-rounds", "bench", "bench-repeats", "backend"); err != nil {
			return err
		}
		return scoreOnly(o)
	case o.set["bench"]:
		if err := conflict("--bench", "out", "annotations"); err != nil {
			return err
		}
		if err := needGenerationFlags(o); err != nil {
			return err
		}
		return benchEval(o)
	}
	if o.set["bench-repeats"] {
		return usagef("--bench-repeats needs --bench")
	}
	if err := needGenerationFlags(o); err != nil {
		return err
	}
	if err := requireFlags("out", o.out); err != nil {
		return err
	}
	return generateEval(o)
}

func needGenerationFlags(o *evalOptions) error {
	if err := requireFlags("model", o.model, "questions", o.questions); err != nil {
		if o.answers == "" && o.model == "" && o.questions == "" {
			return usagef("give --model and --questions to generate answers, or --answers to score an existing answers file")
		}
		return err
	}
	switch {
	case o.world && o.images == "":
		o.images = filepath.Dir(o.questions)
	case o.images == "" && o.taskName != "mmbench" && o.taskName != "mmbench_cn":
		return usagef("--images is required for %s (the folder the questions' image paths are relative to)", o.taskName)
	case o.images != "" && (o.taskName == "mmbench" || o.taskName == "mmbench_cn"):
		return usagef("--images is not used for %s: the images are in the TSV", o.taskName)
	}
	return nil
}

// loadEvalQuestions reads the question file (the world's samples for world) and applies --limit.
func loadEvalQuestions(o *evalOptions) ([]eval.RunQuestion, error) {
	qs, err := loadAllEvalQuestions(o)
	if err == nil && o.limit > 0 && o.limit < len(qs) {
		qs = qs[:o.limit]
	}
	return qs, err
}

func loadAllEvalQuestions(o *evalOptions) ([]eval.RunQuestion, error) {
	var qs []eval.RunQuestion
	if o.world {
		samples, err := eval.ReadWorldSamples(o.questions)
		if err != nil {
			return nil, err
		}
		qs = eval.WorldQuestions(samples)
	} else {
		var err error
		if qs, err = eval.LoadRunQuestions(o.taskName, o.questions, o.allRounds); err != nil {
			return nil, err
		}
	}
	return qs, nil
}

// modelID is the answers' model_id: the model folder's name.
func modelID(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		dir = a
	}
	return filepath.Base(filepath.Clean(dir))
}

func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// evalRunResults is the results.json of a generating run.
type evalRunResults struct {
	Task               string             `json:"task"`
	Metrics            map[string]float64 `json:"metrics"` // null when not scored
	MetricOrder        []string           `json:"metric_order"`
	Scored             bool               `json:"scored"`
	Model              string             `json:"model"`
	ModelID            string             `json:"model_id"`
	Questions          string             `json:"questions"`
	Images             string             `json:"images,omitempty"`
	Annotations        string             `json:"annotations,omitempty"`
	Answers            string             `json:"answers_file"`
	Settings           evalSettings       `json:"settings"`
	QuestionCount      int                `json:"question_count"` // questions of this run (after --limit)
	Answered           int                `json:"answered"`       // lines in the answers file
	Generated          int                `json:"generated"`      // answers generated by this invocation
	GenerationSeconds  float64            `json:"generation_seconds"`
	QuestionsPerSecond float64            `json:"questions_per_second,omitempty"`
	ElapsedSeconds     float64            `json:"elapsed_seconds"`
	Time               string             `json:"time"`
}

type evalSettings struct {
	Decoding     string `json:"decoding"`
	BatchSize    int    `json:"batch_size"`
	MaxNewTokens int    `json:"max_new_tokens"`
	Limit        int    `json:"limit"`
	AllRounds    bool   `json:"all_rounds,omitempty"`
	Backend      string `json:"backend"`
}

func generateEval(o *evalOptions) error {
	start := time.Now()
	all, err := loadAllEvalQuestions(o)
	if err != nil {
		return err
	}
	qs := all
	if o.limit > 0 && o.limit < len(all) {
		qs = all[:o.limit]
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	answersPath := filepath.Join(o.out, "answers.jsonl")
	if note, err := eval.RepairAnswersFile(answersPath); err != nil {
		return err
	} else if note != "" {
		fmt.Fprintf(o.stderr, "switchkd eval: %s\n", note)
	}
	id := modelID(o.model)
	pending := qs
	if existing, err := readAnswersIfAny(answersPath); err != nil {
		return err
	} else if len(existing) > 0 {
		// Match the answers against every question (a rerun may have a smaller --limit), then
		// keep the pending questions among the first --limit.
		if pending, err = eval.PendingQuestions(all, existing, id); err != nil {
			return err
		}
		pending = withinFirst(pending, qs)
	}
	if err := eval.CheckImages(pending, o.images); err != nil {
		return err
	}
	fmt.Fprintf(o.stderr, "switchkd eval: %s: %d questions, %d already answered in %s, %d to generate\n",
		o.taskName, len(qs), len(qs)-len(pending), answersPath, len(pending))
	var genSeconds float64
	if len(pending) > 0 {
		v, err := vlm.Load(o.model, *o.backend)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(answersPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		prog := newProgress(o.stderr, "eval "+o.taskName, len(pending))
		t0 := time.Now()
		_, err = eval.RunQuestions(v, pending, eval.RunOptions{
			ImagesDir: o.images, BatchSize: o.batch, MaxNewTokens: o.maxNew, ModelID: id,
			Emit:     func(lines []eval.AnswerLine) error { return appendAnswers(f, answersPath, lines) },
			Progress: func(done, total int) { prog.add(done - prog.done) },
		})
		prog.finish()
		genSeconds = time.Since(t0).Seconds()
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing %s: %v", answersPath, cerr)
		}
		if err != nil {
			return err
		}
	}
	answers, err := eval.ReadAnswers(answersPath)
	if err != nil {
		return err
	}
	res := evalRunResults{Task: o.taskName, Model: absPath(o.model), ModelID: id, Questions: absPath(o.questions),
		Images: absPath(o.images), Answers: absPath(answersPath),
		Settings: evalSettings{Decoding: "greedy", BatchSize: o.batch, MaxNewTokens: o.maxNew, Limit: o.limit,
			AllRounds: o.allRounds, Backend: *o.backend},
		QuestionCount: len(qs), Answered: len(answers), Generated: len(pending), GenerationSeconds: genSeconds}
	if genSeconds > 0 {
		res.QuestionsPerSecond = float64(len(pending)) / genSeconds
	}
	m, annotations, err := scoreRun(o, answersPath, len(answers) < len(all))
	if err != nil {
		return err
	}
	if m != nil {
		res.Metrics, res.MetricOrder, res.Scored, res.Annotations = m.Values, m.Keys, true, absPath(annotations)
	}
	res.ElapsedSeconds = time.Since(start).Seconds()
	res.Time = time.Now().UTC().Format(time.RFC3339)
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := evalWriteResultsAtomic(filepath.Join(o.out, "results.json"), append(data, '\n')); err != nil {
		return err
	}
	if m != nil {
		return m.WriteMarkdown(o.stdout)
	}
	return nil
}

// withinFirst keeps the questions of pending that are among qs (a prefix of the question list).
func withinFirst(pending, qs []eval.RunQuestion) []eval.RunQuestion {
	type key struct {
		id         string
		round, occ int
	}
	in := map[key]bool{}
	for _, q := range qs {
		in[key{q.ID, q.Round, q.Occ}] = true
	}
	var out []eval.RunQuestion
	for _, q := range pending {
		if in[key{q.ID, q.Round, q.Occ}] {
			out = append(out, q)
		}
	}
	return out
}

// readAnswersIfAny reads an answers file; a missing or empty one has no answers.
func readAnswersIfAny(path string) ([]eval.Answer, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && st.Size() == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	return eval.ReadAnswers(path)
}

// appendAnswers writes one batch of answer lines with a single write and syncs it to disk, so
// an interrupted run loses at most the batch in progress.
func appendAnswers(f *os.File, path string, lines []eval.AnswerLine) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range lines {
		if err := enc.Encode(&lines[i]); err != nil {
			return err
		}
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing %s: %v", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %v", path, err)
	}
	return nil
}

// defaultAnnotations is where a task's ground truth is when --annotations is not given: the
// question file itself for MMBench (the TSV has the answers), the world, ScienceQA given as its
// problems.json folder and an MMMU question list with answers; "" otherwise.
func defaultAnnotations(o *evalOptions) string {
	switch o.taskName {
	case "world", "mmbench", "mmbench_cn":
		return o.questions
	case "sqa":
		if st, err := os.Stat(o.questions); err == nil && (st.IsDir() || filepath.Base(o.questions) == "problems.json") {
			return o.questions
		}
	case "mmmu":
		if _, err := eval.LoadMMMURefs(o.questions); err == nil {
			return o.questions
		}
	}
	return ""
}

// scoreRun scores the run's answers file; nil metrics (and a note on stderr) when the task needs
// annotations that were not given.
func scoreRun(o *evalOptions, answersPath string, partial bool) (*eval.Metrics, string, error) {
	ann := o.annotations
	if ann == "" {
		ann = defaultAnnotations(o)
	}
	if ann == "" {
		fmt.Fprintf(o.stderr, "switchkd eval: answers written to %s; not scored: give --annotations (%s)\n", answersPath, o.t.Annotations)
		return nil, "", nil
	}
	if partial {
		fmt.Fprintf(o.stderr, "switchkd eval: note: not every question is answered yet; the metrics cover a partial run\n")
	}
	var m *eval.Metrics
	var err error
	if o.world {
		m, err = eval.ScoreWorldFiles(answersPath, ann)
	} else {
		m, err = eval.ScoreFiles(o.taskName, answersPath, ann)
	}
	return m, ann, err
}

// scoreOnly scores an existing answers file (--answers): scoreAnswersFile, or the same for the world.
func scoreOnly(o *evalOptions) error {
	if !o.world {
		st, err := os.Stat(o.answers)
		mmeDir := o.taskName == "mme" && err == nil && st.IsDir()
		if o.annotations == "" && !mmeDir {
			return usagef("--annotations is required to score %s answers: %s", o.taskName, o.t.Annotations)
		}
		return scoreAnswersFile(o.taskName, o.answers, o.annotations, o.out, o.stdout)
	}
	if o.annotations == "" {
		return usagef("--annotations is required to score world answers: the world split file (test.json)")
	}
	m, err := eval.ScoreWorldFiles(o.answers, o.annotations)
	if err != nil {
		return err
	}
	if err := m.WriteMarkdown(o.stdout); err != nil {
		return err
	}
	if o.out == "" {
		return nil
	}
	res := evalScoreResults{Task: "world", Metrics: m.Values, MetricOrder: m.Keys, Answers: absPath(o.answers),
		Annotations: absPath(o.annotations), Time: time.Now().UTC().Format(time.RFC3339)}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return evalWriteResultsAtomic(filepath.Join(o.out, "results.json"), append(data, '\n'))
}

// benchEval measures answered questions per second for each batch size of --bench on the same
// questions, interleaving the batch sizes (and reversing their order every other repeat) so that
// load from other processes affects them alike. Nothing is written.
func benchEval(o *evalOptions) error {
	var sizes []int
	for _, s := range strings.Split(o.bench, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return usagef("--bench wants comma-separated batch sizes >= 1, got %q", o.bench)
		}
		sizes = append(sizes, n)
	}
	qs, err := loadEvalQuestions(o)
	if err != nil {
		return err
	}
	if err := eval.CheckImages(qs, o.images); err != nil {
		return err
	}
	t0 := time.Now()
	v, err := vlm.Load(o.model, *o.backend)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.stdout, "model %s loaded in %.1fs; %d questions (%s), max %d new tokens, greedy, backend %s\n\n",
		o.model, time.Since(t0).Seconds(), len(qs), o.taskName, o.maxNew, *o.backend)
	fmt.Fprintf(o.stdout, "| batch | pass | questions | seconds | questions/s | new tokens | new tokens/s |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	qps := map[int][]float64{}
	texts := map[int][]string{}
	for rep := 0; rep < o.benchRepeats; rep++ {
		order := append([]int(nil), sizes...)
		if rep%2 == 1 {
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
		}
		for _, b := range order {
			prog := newProgress(o.stderr, fmt.Sprintf("bench batch %d", b), len(qs))
			start := time.Now()
			lines, err := eval.RunQuestions(v, qs, eval.RunOptions{ImagesDir: o.images, BatchSize: b, MaxNewTokens: o.maxNew,
				Progress: func(done, total int) { prog.add(done - prog.done) }})
			prog.finish()
			if err != nil {
				return err
			}
			sec := time.Since(start).Seconds()
			toks := 0
			var ts []string
			for _, l := range lines {
				toks += l.Tokens
				ts = append(ts, l.Text)
			}
			texts[b] = ts
			qps[b] = append(qps[b], float64(len(lines))/sec)
			fmt.Fprintf(o.stdout, "| %d | %d | %d | %.2f | %.3f | %d | %.1f |\n", b, rep+1, len(lines), sec, float64(len(lines))/sec, toks, float64(toks)/sec)
		}
	}
	fmt.Fprintln(o.stdout)
	base := median(qps[sizes[0]])
	for _, b := range sizes {
		same := 0
		for i, t := range texts[b] {
			if t == texts[sizes[0]][i] {
				same++
			}
		}
		fmt.Fprintf(o.stdout, "batch %d: median %.3f questions/s (%.2fx batch %d); answers equal to batch %d's: %d/%d\n",
			b, median(qps[b]), median(qps[b])/base, sizes[0], sizes[0], same, len(texts[b]))
	}
	return nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
