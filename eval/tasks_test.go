package eval

import "testing"

func TestLookupAndSuffixes(t *testing.T) {
	want := map[string]string{
		"mme": SuffixShort, "vqav2": SuffixShort, "gqa": SuffixShort, "textvqa": SuffixShort, "pope": SuffixShort,
		"mmbench":    "Answer with the option's letter from the given choices directly.",
		"mmbench_cn": "请直接回答选项字母。", "sqa": SuffixMultipleChoice, "mmmu": SuffixMultipleChoice,
		"vizwiz": "When the provided information is insufficient, respond with 'Unanswerable'.\nAnswer the question using a single word or phrase.",
	}
	if len(Names()) != 10 {
		t.Errorf("Names() = %v", Names())
	}
	for name, suffix := range want {
		task, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if task.Name != name || task.PromptSuffix != suffix {
			t.Errorf("%s: %+v", name, task)
		}
	}
	if task, err := Lookup("ScienceQA-IMG"); err != nil || task.Name != "sqa" {
		t.Errorf("alias: %v %v", task, err)
	}
	if _, err := Lookup("mmvet"); err == nil {
		t.Error("unknown task accepted")
	}
}

func TestPrompts(t *testing.T) {
	task, _ := Lookup("gqa")
	if got := task.ShortPrompt("Is the sky blue?"); got != "Is the sky blue?\nAnswer the question using a single word or phrase." {
		t.Errorf("ShortPrompt = %q", got)
	}
	if got := GenerationText("q", true); got != "<image>\nq" {
		t.Errorf("GenerationText = %q", got)
	}
	if got := MMMUPrompt("Which?", []string{"x", "y"}, true); got != "Which?\n(A) x\n(B) y\n\nAnswer with the option's letter from the given choices directly." {
		t.Errorf("MMMUPrompt = %q", got)
	}
	if got := MMMUPrompt("How many?", nil, false); got != "How many?\nAnswer the question using a single word or phrase." {
		t.Errorf("MMMUPrompt open = %q", got)
	}
}

func TestReadAnswersErrors(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/a.jsonl"
	writeFile(t, p, "{\"question_id\": 1, \"text\": \"x\"}\n\n{\"text\": \"y\"}\n")
	if _, err := ReadAnswers(p); err == nil || !containsSub(err.Error(), "a.jsonl:3") {
		t.Errorf("missing question_id: %v", err)
	}
	writeFile(t, p, "{\"question_id\": 1, \"text\": 5}\n")
	if _, err := ReadAnswers(p); err == nil || !containsSub(err.Error(), "a.jsonl:1") {
		t.Errorf("non-string text: %v", err)
	}
	writeFile(t, p, "{\"question_id\": 3.0, \"text\": \"x\", \"prompt\": \"<image>\\nq\", \"round_id\": 2}\n")
	as, err := ReadAnswers(p)
	if err != nil || as[0].QuestionID != "3" || !as[0].HasPrompt || as[0].RoundID != 2 || !as[0].HasRound {
		t.Errorf("ReadAnswers = %+v, %v", as, err)
	}
}
