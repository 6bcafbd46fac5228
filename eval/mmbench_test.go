package eval

import (
	"path/filepath"
	"testing"
)

// Expected letters: can_infer (can_infer_option, then can_infer_text) from VLMEvalKit as kept in
// lmms-eval's mmbench_evals.py, run on the same strings with options cat/dog/bird/fish.
func TestMMBenchExtract(t *testing.T) {
	opts := []string{"cat", "dog", "bird", "fish"}
	cases := [][2]string{
		{"A", "A"}, {"B.", "B"}, {"(C)", "C"}, {"The answer is D", "D"}, {"A dog", "A"},
		{"I choose B)", "B"}, {"答案是B", ""}, {"B。", ""}, {"选 C", "C"}, {"a", ""},
		{"A cat is shown here", "A"}, {"Option: B", "B"}, {"It is a dog.", "B"}, {"cat or dog", ""},
		{"FISH", "D"}, {"", ""}, {"B, C", "C"}, {":D", "D"}, {"C).", "C"}, {"A B", ""},
	}
	for _, c := range cases {
		if got := MMBenchExtract(c[0], opts); got != c[1] {
			t.Errorf("MMBenchExtract(%q) = %q, want %q", c[0], got, c[1])
		}
	}
	// Chinese option text is matched as text
	if got := MMBenchExtract("我认为是狗", []string{"猫", "狗"}); got != "B" {
		t.Errorf("Chinese option text: got %q", got)
	}
}

func TestMMBenchTSVAndPrompt(t *testing.T) {
	refs, err := LoadMMBenchTSV("testdata/mmbench/dev.tsv")
	if err != nil {
		t.Fatal(err)
	}
	if len(refs.Rows) != 6 {
		t.Fatalf("%d rows", len(refs.Rows))
	}
	r1 := refs.Rows[1]
	if len(r1.Options) != 2 || r1.Hint != "Look at the sky." {
		t.Errorf("row 1 = %+v", r1)
	}
	if got, want := MMBenchPrompt(&r1, 0, SuffixMultipleChoice), "Look at the sky.\nWhich color?\nA. red\nB. blue\nAnswer with the option's letter from the given choices directly."; got != want {
		t.Errorf("prompt %q, want %q", got, want)
	}
	r0 := refs.Rows[0]
	if got, want := MMBenchPrompt(&r0, 1, SuffixMultipleChoiceCN), "What animal is this?\nA. dog\nB. bird\nC. fish\nD. cat\n请直接回答选项字母。"; got != want {
		t.Errorf("rotated CN prompt %q, want %q", got, want)
	}
	if refs.Rows[2].Question != "Quoted\tquestion" {
		t.Errorf("quoted field: %q", refs.Rows[2].Question)
	}
}

func TestScoreMMBenchCircularCopies(t *testing.T) {
	dir := t.TempDir()
	ans := filepath.Join(dir, "a.jsonl")
	// q0: all three passes right (B, A, D) -> hit. q1: copy wrong -> miss. q2: no copies, right.
	writeFile(t, ans, `{"question_id": 0, "text": "B"}
{"question_id": 1000000, "text": "A."}
{"question_id": 2000000, "text": "The answer is D"}
{"question_id": 1, "text": "B"}
{"question_id": 1000001, "text": "blue"}
{"question_id": 2, "text": "(A)"}
`)
	m, err := ScoreFiles("mmbench", ans, "testdata/mmbench/dev.tsv")
	if err != nil {
		t.Fatal(err)
	}
	// 1000001's options are blue/red, so "blue" -> A, which is right: all three questions hit
	if m.Values["accuracy"] != 100 {
		t.Errorf("accuracy = %v", m.Values["accuracy"])
	}
	writeFile(t, ans, `{"question_id": 0, "text": "B"}
{"question_id": 1000000, "text": "A"}
{"question_id": 2000000, "text": "C"}
{"question_id": 1, "text": "B"}
{"question_id": 1000001, "text": "A"}
{"question_id": 2, "text": "答案是A"}
`)
	m, err = ScoreFiles("mmbench_cn", ans, "testdata/mmbench/dev.tsv")
	if err != nil {
		t.Fatal(err)
	}
	// q0 fails on its third pass, q2's Chinese answer has no extractable letter: 1 of 3
	if !approxEq(m.Values["accuracy"], 100.0/3) || m.Values["category/attribute_recognition"] != 100 || m.Values["category/image_emotion"] != 0 {
		t.Errorf("metrics = %v", m.Values)
	}
	if m.Values["l2/fine_perception"] != 100 || m.Values["count"] != 3 {
		t.Errorf("metrics = %v", m.Values)
	}
}

func TestScoreMMBenchLLaVARounds(t *testing.T) {
	dir := t.TempDir()
	tsv := filepath.Join(dir, "dev.tsv")
	writeFile(t, tsv, "index\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\tl2-category\n"+
		"7\tPick\tnan\tw\tx\ty\tz\tC\tcat1\tl2\n"+
		"8\tPick\tnan\tp\tq\tnan\tnan\tA\tcat1\tl2\n")
	ans := filepath.Join(dir, "a.jsonl")
	// --all-rounds: round r shows the options rotated left by r, so the right letter moves:
	// q7 answer C (y): rounds 0..3 -> C, B, A, D. q8 answer A (p): rounds 0,1 -> A, B.
	writeFile(t, ans, `{"question_id": 7, "round_id": 0, "text": "C"}
{"question_id": 7, "round_id": 1, "text": "B"}
{"question_id": 7, "round_id": 2, "text": "y"}
{"question_id": 7, "round_id": 3, "text": "D"}
{"question_id": 8, "round_id": 0, "text": "A"}
{"question_id": 8, "round_id": 1, "text": "A"}
`)
	m, err := ScoreFiles("mmbench", ans, tsv)
	if err != nil {
		t.Fatal(err)
	}
	if m.Values["accuracy"] != 50 {
		t.Errorf("accuracy = %v, want 50", m.Values["accuracy"])
	}
}

func TestMMBenchBadTSV(t *testing.T) {
	dir := t.TempDir()
	tsv := filepath.Join(dir, "bad.tsv")
	writeFile(t, tsv, "index\tquestion\tA\tB\tanswer\n1\tq\ta\tb\tA\nx\tq\ta\tb\tA\n")
	if _, err := LoadMMBenchTSV(tsv); err == nil || !containsSub(err.Error(), "bad.tsv:3") {
		t.Errorf("want error naming bad.tsv:3, got %v", err)
	}
}
