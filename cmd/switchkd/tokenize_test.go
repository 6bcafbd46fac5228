package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tokenizeFixture decompresses the tokenizer package's test copy of a tokenizer.json into a
// temporary model folder and returns it.
func tokenizeFixture(t *testing.T, name string) string {
	t.Helper()
	in, err := os.Open(filepath.Join("..", "..", "tokenizer", "testdata", name, "tokenizer.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, zr); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

type tokenizeCase struct {
	Name string          `json:"name"`
	Text string          `json:"text"`
	Qwen json.RawMessage `json:"qwen2.5"`
	GPT2 json.RawMessage `json:"gpt2"`
}

func tokenizeCases(t *testing.T) []tokenizeCase {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "tokenizer", "testdata", "cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tokenizeCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c tokenizeCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func compactIDs(t *testing.T, raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestTokenizeCommand(t *testing.T) {
	cases := tokenizeCases(t)
	// A few lines of each kind: plain, numbers, whitespace, CJK, emoji, NFD, special tokens.
	var picked []tokenizeCase
	for _, c := range cases {
		switch c.Name {
		case "en-hello", "num-long-runs", "ws-crlf", "zh-sentence", "emoji-zwj", "acc-nfd",
			"special-chatml", "special-partial", "contr-mixed-case", "empty", "sp-only":
			picked = append(picked, c)
		}
	}
	if len(picked) != 11 {
		t.Fatalf("picked %d cases", len(picked))
	}
	var in bytes.Buffer
	for _, c := range picked {
		b, _ := json.Marshal(c.Text)
		in.Write(b)
		in.WriteByte('\n')
	}
	inPath := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(inPath, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string // folder or file
		want func(tokenizeCase) json.RawMessage
	}{
		{"qwen2.5", tokenizeFixture(t, "qwen2.5"), func(c tokenizeCase) json.RawMessage { return c.Qwen }},
		{"gpt2", filepath.Join(tokenizeFixture(t, "gpt2"), "tokenizer.json"), func(c tokenizeCase) json.RawMessage { return c.GPT2 }},
	} {
		var out, errb bytes.Buffer
		if code := run([]string{"tokenize", "--tokenizer", tc.path, "--input", inPath}, &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.name, code, errb.String())
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != len(picked) {
			t.Fatalf("%s: %d output lines, want %d:\n%s", tc.name, len(lines), len(picked), out.String())
		}
		for i, c := range picked {
			if want := compactIDs(t, tc.want(c)); lines[i] != want {
				t.Errorf("%s %s: got %s, want %s", tc.name, c.Name, lines[i], want)
			}
		}
	}

	// --input - reads stdin.
	dir := tokenizeFixture(t, "qwen2.5")
	tokenizeStdin = strings.NewReader(`"Hello world"` + "\r\n" + `"12345"`) // CRLF and no final newline
	defer func() { tokenizeStdin = os.Stdin }()
	var out, errb bytes.Buffer
	if code := run([]string{"tokenize", "--tokenizer", dir, "--input", "-"}, &out, &errb); code != 0 {
		t.Fatalf("stdin: exit %d: %s", code, errb.String())
	}
	if got := out.String(); got != "[9707,1879]\n[16,17,18,19,20]\n" {
		t.Errorf("stdin output %q", got)
	}

	// A malformed line is an error naming the line, with no partial output.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte("\"ok\"\n\"fine\"\n{\"text\": 1}\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"tokenize", "--tokenizer", dir, "--input", bad}, &out, &errb); code != 1 {
		t.Errorf("bad line: exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "bad.jsonl:3:") || out.Len() != 0 {
		t.Errorf("bad line: stderr %q, stdout %q", errb.String(), out.String())
	}

	// Usage errors.
	out.Reset()
	errb.Reset()
	if code := run([]string{"tokenize", "--input", bad}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--tokenizer is required") {
		t.Errorf("missing --tokenizer: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"tokenize", "--tokenizer", filepath.Join(dir, "nope.json"), "--input", bad}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "nope.json") {
		t.Errorf("missing tokenizer file: exit %d, stderr %q", code, errb.String())
	}
}
