package tokenizer

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"golang.org/x/text/unicode/norm"
)

var upstreamSHA256 = map[string]string{
	"qwen2.5": "c0382117ea329cdf097041132f6d735924b697924d6f6fc3945713e96ce87539",
	"gpt2":    "cda20b8ca044949aa07ac4078420c80d1a57139d5f9f33700e46fb2d891e7c66",
}

var (
	loadMu sync.Mutex
	loaded = map[string]*Tokenizer{}
)

// gunzipTo decompresses testdata/<name>/tokenizer.json.gz into dir and returns the file path.
func gunzipTo(t testing.TB, name, dir string) string {
	t.Helper()
	in, err := os.Open(filepath.Join("testdata", name, "tokenizer.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tokenizer.json")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, zr); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// load returns the named test tokenizer ("qwen2.5" or "gpt2"), loaded once per test binary.
func load(t testing.TB, name string) *Tokenizer {
	t.Helper()
	loadMu.Lock()
	defer loadMu.Unlock()
	if tk, ok := loaded[name]; ok {
		return tk
	}
	dir := t.TempDir()
	path := gunzipTo(t, name, dir)
	// The decompressed file is byte-identical to the upstream one (SHA-256 in LICENSE-NOTE.md).
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(data)); got != upstreamSHA256[name] {
		t.Fatalf("%s/tokenizer.json SHA-256 %s, want %s", name, got, upstreamSHA256[name])
	}
	tk, err := Load(dir) // a folder holding tokenizer.json
	if err != nil {
		t.Fatal(err)
	}
	loaded[name] = tk
	return tk
}

type testCase struct {
	Name string `json:"name"`
	Text string `json:"text"`
	Qwen []int  `json:"qwen2.5"`
	GPT2 []int  `json:"gpt2"`
}

func readCases(t testing.TB) []testCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []testCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for ln := 1; sc.Scan(); ln++ {
		var c testCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("cases.jsonl:%d: %v", ln, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 70 {
		t.Fatalf("only %d cases", len(cases))
	}
	return cases
}

func TestCasesQwen(t *testing.T) {
	tk := load(t, "qwen2.5")
	for _, c := range readCases(t) {
		if got := tk.Encode(c.Text); !equalIDs(got, c.Qwen) {
			t.Errorf("%s: Encode(%q)\n got %v\nwant %v", c.Name, c.Text, got, c.Qwen)
		}
		if got, want := tk.Decode(c.Qwen, false), norm.NFC.String(c.Text); got != want {
			t.Errorf("%s: Decode = %q, want %q", c.Name, got, want)
		}
	}
}

func TestCasesGPT2(t *testing.T) {
	tk := load(t, "gpt2")
	for _, c := range readCases(t) {
		if got := tk.Encode(c.Text); !equalIDs(got, c.GPT2) {
			t.Errorf("%s: Encode(%q)\n got %v\nwant %v", c.Name, c.Text, got, c.GPT2)
		}
		if got := tk.Decode(c.GPT2, false); got != c.Text {
			t.Errorf("%s: Decode = %q, want %q", c.Name, got, c.Text)
		}
	}
}

func equalIDs(a, b []int) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestAgainstPythonReference compares Encode with testdata/bpe_ref.jsonl.gz: ids from a
// second, independent implementation of the pipeline in Python (gen_bpe_ref.py, which first
// checks itself against every Hugging Face case in cases.jsonl) on 1,506 random and
// adversarial strings mixing scripts, emoji, numbers, whitespace runs and added tokens.
func TestAgainstPythonReference(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "bpe_ref.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	q, g := load(t, "qwen2.5"), load(t, "gpt2")
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n, bad := 0, 0
	for sc.Scan() {
		var c testCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("bpe_ref line %d: %v", n+1, err)
		}
		n++
		for _, k := range []struct {
			name string
			tk   *Tokenizer
			want []int
		}{{"qwen2.5", q, c.Qwen}, {"gpt2", g, c.GPT2}} {
			if got := k.tk.Encode(c.Text); !equalIDs(got, k.want) {
				if bad++; bad <= 5 {
					t.Errorf("%s: Encode(%+q)\n got %v\nwant %v", k.name, c.Text, got, k.want)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 1506 {
		t.Fatalf("read %d records, want 1506", n)
	}
	if bad > 0 {
		t.Errorf("%d mismatches", bad)
	}
}
