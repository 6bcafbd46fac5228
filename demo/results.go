package demo

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchkd/switchkd/plot"
	"github.com/switchkd/switchkd/world"
)

// AverageKey is the mean of the per-type accuracies.
const AverageKey = "average"

// Columns are the table's score columns: each question type, then the average.
func Columns() []string { return append(append([]string(nil), world.QATypes...), AverageKey) }

// WorldInfo summarises the generated world.
type WorldInfo struct {
	Hash      string `json:"hash"`
	Train     int    `json:"train_questions"`
	Captions  int    `json:"train_captions"`
	Test      int    `json:"test_questions"`
	Evaluated int    `json:"evaluated_questions"`
}

// ModelResult is one trained model's test scores (percent; per question type, "average" and
// "exist/f1").
type ModelResult struct {
	Name         string             `json:"name"`
	Method       string             `json:"method,omitempty"`
	Seed         int                `json:"seed"`
	Scores       map[string]float64 `json:"scores"`
	TrainSeconds float64            `json:"train_seconds"`
	EvalSeconds  float64            `json:"eval_seconds"`
}

// Row is one line of the results table: mean and standard deviation over seeds (the sample
// standard deviation; 0 with one seed).
type Row struct {
	Name      string             `json:"name"`
	Label     string             `json:"label"`
	Seeds     int                `json:"seeds"`
	Mean      map[string]float64 `json:"mean"`
	Std       map[string]float64 `json:"std"`
	GapClosed *float64           `json:"gap_closed,omitempty"` // (method - SFT) / (teacher - SFT) on the average
}

// Results is what results.json holds.
type Results struct {
	Profile       Profile            `json:"profile"`
	Backend       string             `json:"backend"`
	Started       string             `json:"started"`
	Seconds       float64            `json:"seconds"`
	World         WorldInfo          `json:"world"`
	TeacherParams int                `json:"teacher_params"`
	StudentParams int                `json:"student_params"`
	Blind         map[string]float64 `json:"blind_baseline"`          // the majority answer per template, on the test questions
	BlindQuestion map[string]float64 `json:"blind_question_baseline"` // the majority answer per question text on train
	Pretrain      *PretrainResult    `json:"pretrain,omitempty"`
	Teacher       *ModelResult       `json:"teacher"`
	// TeacherShuffled is the teacher on the same questions, each asked about another test image.
	TeacherShuffled *ModelResult   `json:"teacher_shuffled_images,omitempty"`
	Students        []*ModelResult `json:"students"`
	Rows            []Row          `json:"rows"`
	Table           string         `json:"table"`
}

// finish aggregates the students per method and renders the table.
func (r *Results) finish() {
	cols := Columns()
	r.Rows = []Row{{Name: TeacherRun, Label: "Teacher", Seeds: 1, Mean: r.Teacher.Scores, Std: zeros(cols)}}
	var sftAvg float64
	haveSFT := false
	for _, m := range r.Profile.Methods {
		row := Row{Name: m.Name, Label: m.Label, Mean: map[string]float64{}, Std: map[string]float64{}}
		for _, c := range cols {
			var xs []float64
			for _, s := range r.Students {
				if s.Method == m.Name {
					xs = append(xs, s.Scores[c])
				}
			}
			row.Seeds = len(xs)
			row.Mean[c], row.Std[c] = meanStd(xs)
		}
		if m.Name == "sft" {
			sftAvg, haveSFT = row.Mean[AverageKey], true
		}
		r.Rows = append(r.Rows, row)
	}
	if haveSFT {
		gap := r.Teacher.Scores[AverageKey] - sftAvg
		for i := 1; i < len(r.Rows); i++ {
			if gap != 0 {
				g := (r.Rows[i].Mean[AverageKey] - sftAvg) / gap
				r.Rows[i].GapClosed = &g
			}
		}
	}
	r.Table = r.markdown()
}

func zeros(cols []string) map[string]float64 {
	m := map[string]float64{}
	for _, c := range cols {
		m[c] = 0
	}
	return m
}

func meanStd(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	mean := s / float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	v := 0.0
	for _, x := range xs {
		v += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(v / float64(len(xs)-1))
}

// markdown renders the results table: accuracy (%) on the test questions per type, mean ± std
// over seeds for the students.
func (r *Results) markdown() string {
	cols := Columns()
	var b strings.Builder
	b.WriteString("| Model |")
	for _, c := range cols {
		b.WriteString(" " + title(c) + " |")
	}
	b.WriteString(" Gap closed |\n|---|")
	for range cols {
		b.WriteString("---:|")
	}
	b.WriteString("---:|\n")
	line := func(label string, mean, std map[string]float64, seeds int, gap string) {
		b.WriteString("| " + label + " |")
		for _, c := range cols {
			if seeds > 1 {
				fmt.Fprintf(&b, " %.1f ± %.1f |", mean[c], std[c])
			} else {
				fmt.Fprintf(&b, " %.1f |", mean[c])
			}
		}
		b.WriteString(" " + gap + " |\n")
	}
	line("Blind (majority per template)", r.Blind, nil, 1, "")
	if r.TeacherShuffled != nil {
		line("Teacher, shuffled images", r.TeacherShuffled.Scores, nil, 1, "")
	}
	for _, row := range r.Rows {
		gap := ""
		if row.GapClosed != nil {
			gap = fmt.Sprintf("%.0f%%", 100**row.GapClosed)
		}
		label := row.Label
		if row.Name == TeacherRun {
			label = "Teacher"
		}
		line(label, row.Mean, row.Std, row.Seeds, gap)
	}
	fmt.Fprintf(&b, "\nAccuracy (%%) on %d test questions of the synthetic world", r.World.Evaluated)
	if n := r.seeds(); n > 1 {
		fmt.Fprintf(&b, "; students: mean ± std over %d seeds", n)
	}
	tower := "the same vision tower shape, each student's a copy of the teacher's initial (untrained) tower"
	if r.Pretrain != nil {
		tower = "teacher and students start from the same pre-trained vision tower"
	}
	fmt.Fprintf(&b, ". Teacher %.2fM parameters, students %.2fM (%s). "+
		"Gap closed = (method - SFT) / (teacher - SFT) on the average.\n", float64(r.TeacherParams)/1e6, float64(r.StudentParams)/1e6, tower)
	return b.String()
}

// CheckTeacher reports a teacher that did not learn to use the image: one whose average is not
// at least margin points above both its own average with shuffled images (each question asked
// about another test image) and the text-only baseline fitted on the training questions (the
// majority answer per question text). The majority per template is fitted on the test questions
// themselves, an optimistic bound for a text-only model that a small test set inflates, so it is
// reported, not checked.
func (r *Results) CheckTeacher(margin float64) error {
	if r.Teacher == nil {
		return fmt.Errorf("demo: no teacher result")
	}
	t := r.Teacher.Scores[AverageKey]
	if r.TeacherShuffled != nil {
		if x := r.TeacherShuffled.Scores[AverageKey]; t < x+margin {
			return fmt.Errorf("the teacher's average %.1f%% is not %g points above its %.1f%% with shuffled images: it does not use the image", t, margin, x)
		}
	}
	if x := r.BlindQuestion[AverageKey]; t < x+margin {
		return fmt.Errorf("the teacher's average %.1f%% is not %g points above the text-only baseline %.1f%% (majority answer per question): it did not learn to use the image", t, margin, x)
	}
	return nil
}

func (r *Results) seeds() int {
	n := 0
	for _, row := range r.Rows[1:] {
		n = max(n, row.Seeds)
	}
	return n
}

func title(c string) string {
	switch c {
	case AverageKey:
		return "Avg"
	case "mc":
		return "MC"
	case "ocr":
		return "OCR"
	}
	return strings.ToUpper(c[:1]) + c[1:]
}

// write saves results.json, results.md and the per-type bar chart into dir.
func (r *Results) write(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, ResultsJS), append(b, '\n')); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, ResultsMD), []byte(r.Table)); err != nil {
		return err
	}
	var names []string
	for _, row := range r.Rows {
		names = append(names, row.Name)
	}
	var groups []plot.BarGroup
	for _, c := range Columns() {
		g := plot.BarGroup{Label: title(c)}
		for _, row := range r.Rows {
			g.Values = append(g.Values, row.Mean[c])
			g.Errors = append(g.Errors, row.Std[c])
		}
		groups = append(groups, g)
	}
	return plot.GroupedBarChart(filepath.Join(dir, BarChart), "Test accuracy per question type", "accuracy (%)", names, groups)
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
