package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/switchkd/switchkd/vlm"
	"github.com/switchkd/switchkd/world"
)

// WorldMaxNewTokens bounds the answers generated for the synthetic world: its answers are one to
// three words ("yes", "2", "B", "the red circle").
const WorldMaxNewTokens = 16

// Prediction is a model's answer to one sample.
type Prediction struct {
	ID     string // the sample id (question_id)
	Prompt string // the question as asked ("<image>\n" + question)
	Text   string // the generated answer
}

// ReadWorldSamples reads a synthetic world split (test.json: a JSON array of LLaVA samples with
// "type" and "pope_split"); errors name the file and line. Every sample needs an id, unique, a
// type, and a human turn followed by a gpt answer.
func ReadWorldSamples(path string) ([]world.Sample, error) {
	doc, elems, offs, err := decodeArrayElems(path, "")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := make([]world.Sample, 0, len(elems))
	for i, raw := range elems {
		var s world.Sample
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, doc.errAt(offs[i], "sample %d: %v", i, err)
		}
		switch {
		case s.ID == "":
			return nil, doc.errAt(offs[i], "sample %d has no \"id\"", i)
		case seen[s.ID]:
			return nil, doc.errAt(offs[i], "duplicate sample id %q", s.ID)
		case s.Type == "":
			return nil, doc.errAt(offs[i], "sample %q has no \"type\" (not a switchkd world split?)", s.ID)
		case len(s.Conversations) < 2 || s.Conversations[0].From != "human" || s.Conversations[1].From != "gpt":
			return nil, doc.errAt(offs[i], "sample %q does not start with a human question and a gpt answer", s.ID)
		}
		seen[s.ID] = true
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no samples", path)
	}
	return out, nil
}

// WorldQuestions turns world samples into generation questions: the first human turn, without its
// "<image>\n" prefix and with no suffix added (the prompts the world's models are trained on).
func WorldQuestions(samples []world.Sample) []RunQuestion {
	qs := make([]RunQuestion, len(samples))
	for i, s := range samples {
		qs[i] = RunQuestion{ID: s.ID, RawID: mustJSON(s.ID), Image: s.Image, Text: stripImageToken(s.Question()),
			Source: "sample " + s.ID}
	}
	finishQuestions("world", qs)
	return qs
}

// ScoreWorld scores predictions of world samples with world.Correct (POPE parsing for yes/no
// questions, the option letter for multiple choice, normalised exact match otherwise). Only
// samples with a prediction are scored (a partial run scores what it answered); a prediction for
// an unknown or repeated id is an error.
//
// Keys (percent unless a count): average (the mean of the per-type accuracies), accuracy (over
// all scored questions), <type>/accuracy for each question type (world.QATypes order, then any
// other), exist/<pope split>/accuracy and exist/<pope split>/f1 for the existence questions of
// each POPE split, exist/f1 and exist/yes_ratio (POPE's F1 and share of "yes"), <type>/questions and
// count (questions scored).
func ScoreWorld(samples []world.Sample, predictions []Prediction) (*Metrics, error) {
	byID := map[string]int{}
	for i, s := range samples {
		if _, dup := byID[s.ID]; dup {
			return nil, fmt.Errorf("world: duplicate sample id %q", s.ID)
		}
		byID[s.ID] = i
	}
	var qas []world.QA
	var preds []string
	used := map[string]bool{}
	for _, p := range predictions {
		i, ok := byID[p.ID]
		if !ok {
			return nil, fmt.Errorf("world: prediction for %q, which is not a sample of the split", p.ID)
		}
		if used[p.ID] {
			return nil, fmt.Errorf("world: two predictions for %q", p.ID)
		}
		used[p.ID] = true
		qas = append(qas, samples[i].QA())
		preds = append(preds, p.Text)
	}
	if len(qas) == 0 {
		return nil, errors.New("world: no predictions to score")
	}
	sc := world.Evaluate(qas, preds)
	var types []string
	for _, t := range world.QATypes {
		if _, ok := sc[t]; ok {
			types = append(types, t)
		}
	}
	var extra []string
	for _, qa := range qas {
		if !slices.Contains(types, qa.Type) && !slices.Contains(extra, qa.Type) {
			extra = append(extra, qa.Type)
		}
	}
	sort.Strings(extra)
	types = append(types, extra...)

	m := NewMetrics("world")
	sum := 0.0
	for _, t := range types {
		sum += sc[t].Accuracy()
	}
	m.Set("average", 100*sum/float64(len(types)))
	m.Set("accuracy", 100*sc["all"].Accuracy())
	for _, t := range types {
		m.Set(t+"/accuracy", 100*sc[t].Accuracy())
	}
	if e, ok := sc[world.TypeExist]; ok {
		for _, split := range world.PopeSplits {
			if s, ok := sc[world.TypeExist+"/"+split]; ok {
				m.Set("exist/"+split+"/accuracy", 100*s.Accuracy())
				m.Set("exist/"+split+"/f1", 100*s.F1())
			}
		}
		m.Set("exist/f1", 100*e.F1())
		m.Set("exist/yes_ratio", 100*e.YesRatio())
	}
	for _, t := range types {
		m.Set(t+"/questions", float64(sc[t].N))
	}
	m.Set("count", float64(sc["all"].N))
	return m, nil
}

// PredictionsFromAnswers converts answers-file lines to predictions.
func PredictionsFromAnswers(answers []Answer) []Prediction {
	out := make([]Prediction, len(answers))
	for i, a := range answers {
		out[i] = Prediction{ID: a.QuestionID, Prompt: a.Prompt, Text: a.Text}
	}
	return out
}

// ScoreWorldFiles scores an answers file against a world split file.
func ScoreWorldFiles(answersPath, samplesPath string) (*Metrics, error) {
	answers, err := ReadAnswers(answersPath)
	if err != nil {
		return nil, err
	}
	samples, err := ReadWorldSamples(samplesPath)
	if err != nil {
		return nil, err
	}
	m, err := ScoreWorld(samples, PredictionsFromAnswers(answers))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", answersPath, err)
	}
	return m, nil
}

// RunWorld answers every sample of a world split with v (greedy, WorldMaxNewTokens new tokens,
// batch samples at a time; images relative to imagesDir, the world folder) and scores the
// answers with ScoreWorld. progress, when not nil, is called after each batch.
func RunWorld(v *vlm.VLM, samples []world.Sample, imagesDir string, batch int, progress func(done, total int)) (*Metrics, []Prediction, error) {
	qs := WorldQuestions(samples)
	if err := CheckImages(qs, imagesDir); err != nil {
		return nil, nil, err
	}
	lines, err := RunQuestions(v, qs, RunOptions{ImagesDir: imagesDir, BatchSize: batch, MaxNewTokens: WorldMaxNewTokens, Progress: progress})
	if err != nil {
		return nil, nil, err
	}
	preds := make([]Prediction, len(lines))
	for i, l := range lines {
		preds[i] = Prediction{ID: qs[i].ID, Prompt: l.Prompt, Text: l.Text}
	}
	m, err := ScoreWorld(samples, preds)
	if err != nil {
		return nil, preds, err
	}
	return m, preds, nil
}
