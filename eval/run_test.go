package eval

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadRunQuestionsJSONL(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "q.jsonl")
	writeFile(t, p, `{"question_id": 12, "image": "a.jpg", "text": "What is it?\nAnswer the question using a single word or phrase.", "category": "x"}
{"question_id": "mme/1.png", "image": "mme/1.png", "text": "Is it red? Please answer yes or no."}

{"question_id": "mme/1.png", "image": "mme/1.png", "text": "Is it blue? Please answer yes or no."}
{"question_id": 13, "text": "<image>\nNo picture?"}
`)
	qs, err := LoadRunQuestions("mme", p, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 4 {
		t.Fatalf("%d questions", len(qs))
	}
	if qs[0].ID != "12" || string(qs[0].RawID) != "12" || qs[0].Prompt != qs[0].Text || qs[0].Text != "What is it?\n"+SuffixShort || qs[0].Source != p+":1" {
		t.Errorf("q0 %+v", qs[0])
	}
	// A question without the suffix gets it; the prompt is the text as LLaVA's loader writes it.
	if qs[1].Text != "Is it red? Please answer yes or no.\n"+SuffixShort || qs[1].Prompt != qs[1].Text || qs[1].Occ != 0 || qs[2].Occ != 1 || qs[2].Source != p+":4" {
		t.Errorf("q1 %+v q2 %+v", qs[1], qs[2])
	}
	if qs[3].HasImage() || qs[3].Text != "No picture?\n"+SuffixShort {
		t.Errorf("q3 %+v", qs[3])
	}

	// SQA / MMMU style prompts carry "<image>" for image questions.
	qs, err = LoadRunQuestions("mmmu", p, false)
	if err != nil {
		t.Fatal(err)
	}
	if qs[0].Prompt != "<image>\n"+qs[0].Text || qs[3].Prompt != qs[3].Text {
		t.Errorf("mmmu prompts %q %q", qs[0].Prompt, qs[3].Prompt)
	}

	writeFile(t, p, "{\"question_id\": 1, \"text\": \"a\"}\n{\"question_id\": 2, \"text\": 5}\n")
	if _, err := LoadRunQuestions("gqa", p, false); err == nil || !strings.Contains(err.Error(), "q.jsonl:2") {
		t.Errorf("bad text: %v", err)
	}
	writeFile(t, p, "{\"question_id\": 1, \"text\": \"a\"}\n{\"question_id\": 2}\n")
	if _, err := LoadRunQuestions("gqa", p, false); err == nil || !strings.Contains(err.Error(), "q.jsonl:2") {
		t.Errorf("no text: %v", err)
	}
	writeFile(t, p, "{\"question_id\": 1, \"text\": \"a\"}\nnot json\n")
	if _, err := LoadRunQuestions("gqa", p, false); err == nil || !strings.Contains(err.Error(), "q.jsonl:2") {
		t.Errorf("not json: %v", err)
	}
	arr := filepath.Join(dir, "q.json")
	writeFile(t, arr, "[\n {\"id\": \"a\", \"conversations\": [{\"from\": \"human\", \"value\": \"Q\"}]},\n {\"id\": \"b\", \"conversations\": []}\n]")
	if _, err := LoadRunQuestions("sqa", arr, false); err == nil || !strings.Contains(err.Error(), "q.json:3") {
		t.Errorf("no human turn: %v", err)
	}
}

func pngBase64(t *testing.T) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	img.Set(1, 1, color.RGBA{200, 10, 10, 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func TestLoadRunQuestionsMMBench(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mmb.tsv")
	img := pngBase64(t)
	writeFile(t, p, "index\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\tl2-category\timage\n"+
		"0\tWhat colour?\tnan\tred\tblue\tnan\tnan\tA\tcolour\tperception\t"+img+"\n"+
		"1\tWhich?\tA hint.\tx\ty\tz\tnan\tC\tother\treasoning\t0\n")
	qs, err := LoadRunQuestions("mmbench", p, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs[0].Text != "What colour?\nA. red\nB. blue\n"+SuffixMultipleChoice || !qs[0].HasImage() {
		t.Fatalf("%+v", qs)
	}
	if qs[1].Text != "A hint.\nWhich?\nA. x\nB. y\nC. z\n"+SuffixMultipleChoice || !bytes.Equal(qs[1].ImageData, qs[0].ImageData) {
		t.Errorf("q1 %+v (the image cell 0 refers to row 0's image)", qs[1])
	}
	if _, _, err := image.Decode(bytes.NewReader(qs[0].ImageData)); err != nil {
		t.Error(err)
	}
	qs, err = LoadRunQuestions("mmbench", p, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 5 || !qs[1].HasRound || qs[1].Round != 1 || qs[1].Text != "What colour?\nA. blue\nB. red\n"+SuffixMultipleChoice || qs[4].Round != 2 {
		t.Errorf("all rounds: %+v", qs)
	}
}

func TestPendingQuestions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "q.jsonl")
	writeFile(t, p, `{"question_id": "c/1.png", "image": "c/1.png", "text": "A?"}
{"question_id": "c/1.png", "image": "c/1.png", "text": "B?"}
{"question_id": "c/2.png", "image": "c/2.png", "text": "C?"}
`)
	qs, err := LoadRunQuestions("mme", p, false)
	if err != nil {
		t.Fatal(err)
	}
	ans := filepath.Join(dir, "answers.jsonl")
	writeFile(t, ans, `{"question_id": "c/1.png", "prompt": "A?\n`+SuffixShort+`", "text": "yes", "model_id": "m"}`+"\n")
	answers, err := ReadAnswers(ans)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := PendingQuestions(qs, answers, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].Text != "B?\n"+SuffixShort || pending[1].ID != "c/2.png" {
		t.Errorf("pending %+v", pending)
	}
	if _, err := PendingQuestions(qs, answers, "other"); err == nil || !strings.Contains(err.Error(), "model") {
		t.Errorf("other model: %v", err)
	}
	answers[0].Prompt = "Z?"
	if _, err := PendingQuestions(qs, answers, "m"); err == nil || !strings.Contains(err.Error(), "answers.jsonl:1") {
		t.Errorf("other prompt: %v", err)
	}
	answers[0].Prompt = qs[0].Prompt
	three := []Answer{answers[0], answers[0], answers[0]}
	three[1].Prompt, three[2].Prompt = qs[1].Prompt, "x"
	if _, err := PendingQuestions(qs, three, "m"); err == nil || !strings.Contains(err.Error(), "answered 3 times but asked 2") {
		t.Errorf("too many answers: %v", err)
	}
}

func TestRepairAnswersFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "answers.jsonl")
	if note, err := RepairAnswersFile(p); note != "" || err != nil {
		t.Errorf("missing file: %q %v", note, err)
	}
	writeFile(t, p, "{\"question_id\": 1, \"text\": \"a\"}\n{\"question_id\": 2, \"te")
	note, err := RepairAnswersFile(p)
	if err != nil || !strings.Contains(note, "incomplete last line") {
		t.Errorf("cut line: %q %v", note, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "{\"question_id\": 1, \"text\": \"a\"}\n" {
		t.Errorf("after repair: %q", b)
	}
	writeFile(t, p, "{\"question_id\": 1, \"text\": \"a\"}")
	if note, err := RepairAnswersFile(p); note != "" || err != nil {
		t.Errorf("complete line: %q %v", note, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "{\"question_id\": 1, \"text\": \"a\"}\n" {
		t.Errorf("newline not added: %q", b)
	}
}
