package eval

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchkd/switchkd/world"
)

func worldSample(id, typ, pope, q, a string) world.Sample {
	return world.Sample{ID: id, Image: "images/test_0.png", Type: typ, PopeSplit: pope,
		Conversations: []world.Turn{{From: "human", Value: world.ImagePrefix + q}, {From: "gpt", Value: a}}}
}

func TestScoreWorldHandMade(t *testing.T) {
	samples := []world.Sample{
		worldSample("e1", world.TypeExist, world.PopeRandom, "Is there a red circle?", "Yes"),
		worldSample("e2", world.TypeExist, world.PopeRandom, "Is there a blue ring?", "No"),
		worldSample("e3", world.TypeExist, world.PopeAdversarial, "Is there a green cross?", "No"),
		worldSample("e4", world.TypeExist, world.PopeAdversarial, "Is there a pink square?", "Yes"),
		worldSample("c1", world.TypeCount, "", "How many shapes are there?", "3"),
		worldSample("c2", world.TypeCount, "", "How many red objects are there?", "0"),
		worldSample("m1", world.TypeMC, "", "What colour is the ring?\nA. red\nB. blue\n"+world.MCInstruction, "B"),
		worldSample("m2", world.TypeMC, "", "What shape is the red object?\nA. ring\nB. cross\n"+world.MCInstruction, "A"),
		worldSample("s1", world.TypeSpatial, "", "Is the red circle above the blue ring?", "No"),
		worldSample("a1", world.TypeAttribute, "", "What colour is the circle?", "red"),
	}
	preds := []Prediction{
		{ID: "e1", Text: "Yes, there is."}, // yes: right (TP)
		{ID: "e2", Text: "There is not."},  // no: right (TN)
		{ID: "e3", Text: "yes"},            // wrong (FP)
		{ID: "e4", Text: "No."},            // wrong (FN)
		{ID: "c1", Text: "three"},          // normalised: right
		{ID: "c2", Text: "none"},           // "none" -> 0: right
		{ID: "m1", Text: "The answer is B."},
		{ID: "m2", Text: "B"},
		{ID: "s1", Text: "no"},
		{ID: "a1", Text: "Red."},
	}
	m, err := ScoreWorld(samples, preds)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"exist/accuracy": 50, "count/accuracy": 100, "mc/accuracy": 50, "spatial/accuracy": 100, "attribute/accuracy": 100,
		"average":               (50 + 100 + 100 + 100 + 50) / 5.0,
		"accuracy":              70,
		"exist/random/accuracy": 100, "exist/random/f1": 100,
		"exist/adversarial/accuracy": 0, "exist/adversarial/f1": 0,
		"exist/f1": 100 * 2.0 / 4, "exist/yes_ratio": 50,
		"exist/questions": 4, "count/questions": 2, "count": 10,
	}
	for k, v := range want {
		got, ok := m.Get(k)
		if !ok || math.Abs(got-v) > 1e-9 {
			t.Errorf("%s = %v (%v), want %v", k, got, ok, v)
		}
	}
	// Keys: average and accuracy first, types in world.QATypes order.
	if strings.Join(m.Keys[:7], " ") != "average accuracy exist/accuracy attribute/accuracy count/accuracy spatial/accuracy mc/accuracy" {
		t.Errorf("key order %v", m.Keys)
	}
	if _, ok := m.Get("exist/popular/accuracy"); ok {
		t.Error("a POPE split without questions is reported")
	}

	// Partial predictions score what was answered; unknown and repeated ids are errors.
	m, err = ScoreWorld(samples, preds[:2])
	if err != nil || m.Values["count"] != 2 || m.Values["accuracy"] != 100 {
		t.Errorf("partial: %v %v", m, err)
	}
	if _, err := ScoreWorld(samples, []Prediction{{ID: "zz", Text: "yes"}}); err == nil || !strings.Contains(err.Error(), "zz") {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := ScoreWorld(samples, []Prediction{preds[0], preds[0]}); err == nil {
		t.Error("repeated prediction accepted")
	}
	if _, err := ScoreWorld(samples, nil); err == nil {
		t.Error("no predictions accepted")
	}
}

func TestScoreWorldFiles(t *testing.T) {
	dir := t.TempDir()
	split := filepath.Join(dir, "test.json")
	writeFile(t, split, `[
 {"id": "x1", "image": "images/test_0.png", "type": "exist", "pope_split": "popular",
  "conversations": [{"from": "human", "value": "<image>\nIs there a red circle?"}, {"from": "gpt", "value": "No"}]},
 {"id": "x2", "image": "images/test_0.png", "type": "ocr",
  "conversations": [{"from": "human", "value": "<image>\nWhat letter is written in the image?"}, {"from": "gpt", "value": "K"}]}
]`)
	ans := filepath.Join(dir, "answers.jsonl")
	writeFile(t, ans, `{"question_id": "x2", "prompt": "<image>\nWhat letter is written in the image?", "text": "k"}
{"question_id": "x1", "prompt": "<image>\nIs there a red circle?", "text": "No, there is not."}
`)
	m, err := ScoreWorldFiles(ans, split)
	if err != nil {
		t.Fatal(err)
	}
	if m.Values["accuracy"] != 100 || m.Values["exist/popular/accuracy"] != 100 || m.Values["ocr/accuracy"] != 100 {
		t.Errorf("metrics %v", m.Values)
	}
	qs := WorldQuestions(mustWorld(t, split))
	if qs[0].Text != "Is there a red circle?" || qs[0].Prompt != "<image>\nIs there a red circle?" || qs[0].Image != "images/test_0.png" {
		t.Errorf("world question %+v", qs[0])
	}

	writeFile(t, split, `[
 {"id": "x1", "image": "a.png", "type": "exist", "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "No"}]},
 {"id": "x1", "image": "a.png", "type": "exist", "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "No"}]}
]`)
	if _, err := ReadWorldSamples(split); err == nil || !strings.Contains(err.Error(), "test.json:3") {
		t.Errorf("duplicate id error: %v", err)
	}
	writeFile(t, split, `[{"id": "x1", "image": "a.png", "conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "No"}]}]`)
	if _, err := ReadWorldSamples(split); err == nil || !strings.Contains(err.Error(), "no \"type\"") {
		t.Errorf("missing type error: %v", err)
	}
}

func mustWorld(t *testing.T, path string) []world.Sample {
	t.Helper()
	s, err := ReadWorldSamples(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
