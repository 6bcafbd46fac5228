package data

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadLLaVAJSON(t *testing.T) {
	dir := t.TempDir()
	want := []Sample{
		{ID: "000000033471", Image: "coco/train2017/000000033471.jpg", Conversations: []Turn{
			{"human", "<image>\nWhat are the colors of the bus?"}, {"gpt", "White and red."}}},
		{ID: "42", Conversations: []Turn{{"human", "Hi"}, {"gpt", "Hello"}, {"human", "Bye"}, {"gpt", "Bye!"}}},
		{Conversations: []Turn{{"human", "no id"}, {"gpt", "ok"}}},
	}
	arr := `[
 {"id": "000000033471", "image": "coco/train2017/000000033471.jpg", "conversations": [
   {"from": "human", "value": "<image>\nWhat are the colors of the bus?"}, {"from": "gpt", "value": "White and red."}]},
 {"id": 42, "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
   {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Bye!"}], "model": "ignored"},
 {"image": null, "conversations": [{"from": "human", "value": "no id"}, {"from": "gpt", "value": "ok"}]}
]`
	got, err := ReadLLaVAJSON(writeFile(t, dir, "d.json", arr))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("json:\n got %+v\nwant %+v", got, want)
	}
	lines := `{"id": "000000033471", "image": "coco/train2017/000000033471.jpg", "conversations": [{"from": "human", "value": "<image>\nWhat are the colors of the bus?"}, {"from": "gpt", "value": "White and red."}]}

{"id": 42, "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}, {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Bye!"}]}
{"conversations": [{"from": "human", "value": "no id"}, {"from": "gpt", "value": "ok"}]}`
	for _, name := range []string{"d.jsonl", "lines.json"} {
		got, err := ReadLLaVAJSON(writeFile(t, dir, name, lines))
		if err != nil {
			t.Fatal(name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

func TestReadLLaVAJSONErrors(t *testing.T) {
	dir := t.TempDir()
	ok := `{"id": "a", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}`
	for i, c := range []struct {
		name, body string
		want       []string
	}{
		{"x.json", `[` + ok + `, {"id": "b", "conversations": [{"from": "human", "value": "q"}]}]`,
			[]string{`sample 1 (id "b")`, "0 answers"}},
		{"x.json", `[` + ok + `, {"id": "c"}]`, []string{`sample 1 (id "c")`, `missing "conversations"`}},
		{"x.json", `[` + ok + `, {"id": "d", "conversations": [{"from": "human"}, {"from": "gpt", "value": "a"}]}]`,
			[]string{`sample 1 (id "d")`, `turn 0: missing "value"`}},
		{"x.json", `[{"id": "e", "conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]}]`,
			[]string{`sample 0 (id "e")`, `turn 1: from "bot"`}},
		{"x.json", `[{"id": "f", "image": ["a.jpg", "b.jpg"], "conversations": []}]`, []string{`sample 0 (id "f")`, "image must be a string"}},
		{"x.json", `[{"id": "g", "conversations": [{"from": "human", "value": 3}, {"from": "gpt", "value": "a"}]}]`,
			[]string{`sample 0 (id "g")`, `"value" must be a string`}},
		{"x.json", `[` + ok + `, {"id": "h", "conversations": [}]`, []string{"sample 1", "malformed JSON"}},
		{"x.json", `[` + ok + `,`, []string{"sample 1", "malformed JSON"}},
		{"x.json", `{"not": "an array"`, []string{"line 1"}},
		{"x.json", ``, []string{"empty dataset"}},
		{"x.jsonl", ok + "\n" + `{"id": "k", "conversations": "nope"}`, []string{"line 2", `sample 1 (id "k")`, "conversations"}},
		{"x.jsonl", ok + "\n{broken\n", []string{"line 2", "sample 1", "malformed JSON"}},
		{"x.json", `[{"id": "m", "image": "", "conversations": []}]`, []string{`sample 0 (id "m")`, "empty"}},
	} {
		path := writeFile(t, dir, fmt.Sprintf("%d_%s", i, c.name), c.body)
		_, err := ReadLLaVAJSON(path)
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		for _, w := range append(c.want, path) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("case %d: error %q does not mention %q", i, err, w)
			}
		}
	}
	missing := filepath.Join(dir, "missing.json")
	if _, err := ReadLLaVAJSON(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
}

func TestLoadExampleImageRules(t *testing.T) {
	e := newPieceEncoder()
	pp := DefaultPreprocessConfig(16)
	dir := "testdata" // images/rgb_37x23.png lives there
	withImage := Sample{ID: "img", Image: "images/rgb_37x23.png", Conversations: []Turn{{"human", "<image>\nWhat?"}, {"gpt", "A."}}}
	ex, err := LoadExample(withImage, dir, e, pp)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := LoadImage("testdata/images/rgb_37x23.png")
	wantPix, _ := Preprocess(img, pp)
	if ex.ID != "img" || !ex.HasImageToken || ex.ImageIsZero || !reflect.DeepEqual(ex.Pixels, wantPix) {
		t.Errorf("with image: id %q hasTok %v zero %v pixels %d", ex.ID, ex.HasImageToken, ex.ImageIsZero, len(ex.Pixels))
	}
	wantEnc, _ := EncodeConversation(e, withImage.Conversations, DefaultModelMaxLength)
	if !reflect.DeepEqual(ex.InputIDs, wantEnc.InputIDs) || !reflect.DeepEqual(ex.Labels, wantEnc.Labels) {
		t.Error("LoadExample tokens differ from EncodeConversation")
	}

	// <image> but no image file: all-zero pixels.
	ex, err = LoadExample(Sample{ID: "z", Conversations: []Turn{{"human", "<image>\nWhat?"}, {"gpt", "A."}}}, dir, e, pp)
	if err != nil {
		t.Fatal(err)
	}
	if !ex.ImageIsZero || len(ex.Pixels) != 3*16*16 || !ex.HasImageToken {
		t.Fatalf("zero image: %+v", ex)
	}
	for _, v := range ex.Pixels {
		if v != 0 {
			t.Fatal("zero image has a non-zero value")
		}
	}
	// Neither: no pixels.
	ex, err = LoadExample(Sample{ID: "t", Conversations: []Turn{{"human", "Hi"}, {"gpt", "Yo"}}}, dir, e, pp)
	if err != nil || ex.Pixels != nil || ex.ImageIsZero || ex.HasImageToken {
		t.Fatalf("text only: %+v %v", ex, err)
	}
	// Image but no <image> token: loaded (as TinyLLaVA does) but no placeholder.
	ex, err = LoadExample(Sample{ID: "n", Image: "images/rgb_37x23.png", Conversations: []Turn{{"human", "Hi"}, {"gpt", "Yo"}}}, dir, e, pp)
	if err != nil || !reflect.DeepEqual(ex.Pixels, wantPix) || ex.HasImageToken {
		t.Fatalf("image without token: %v hasTok %v", err, ex.HasImageToken)
	}

	// Errors name the sample and the file.
	for _, c := range []struct {
		s    Sample
		want []string
	}{
		{Sample{ID: "miss", Image: "images/nope.png", Conversations: withImage.Conversations}, []string{`"miss"`, "nope.png"}},
		{Sample{ID: "corrupt", Image: "manifest.json", Conversations: withImage.Conversations}, []string{`"corrupt"`, "manifest.json", "decoding"}},
		{Sample{ID: "two", Conversations: []Turn{{"human", "<image>a"}, {"gpt", "b"}, {"human", "<image>c"}, {"gpt", "d"}}}, []string{`"two"`, "2 image tokens"}},
		{Sample{ID: "odd", Conversations: []Turn{{"human", "a"}}}, []string{`"odd"`, "answers"}},
	} {
		_, err := LoadExample(c.s, dir, e, pp)
		if err == nil {
			t.Errorf("%s: no error", c.s.ID)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.s.ID, err, w)
			}
		}
	}
}

func loaderSamples(n int) []Sample {
	s := make([]Sample, n)
	for i := range s {
		s[i] = Sample{ID: fmt.Sprintf("s%d", i), Conversations: []Turn{{"human", fmt.Sprint(i)}, {"gpt", "x"}}}
	}
	return s
}

func TestLoaderDeterministicOrder(t *testing.T) {
	samples := loaderSamples(50)
	order := make([]int, len(samples))
	for i := range order {
		order[i] = (i*17 + 3) % len(samples) // a permutation
	}
	var inFlight, peak atomic.Int32
	fn := func(s Sample) (Example, error) {
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		var k int
		fmt.Sscanf(s.ID, "s%d", &k)
		time.Sleep(time.Duration((k*7)%5) * time.Millisecond) // uneven work: finishing order is scrambled
		return Example{Encoded: Encoded{ID: s.ID}}, nil
	}
	for _, workers := range []int{1, 4} {
		peak.Store(0)
		l := NewLoader(samples, order, workers, 8, fn)
		for pos := 0; ; pos++ {
			ex, idx, err := l.Next()
			if err == io.EOF {
				if pos != len(order) {
					t.Fatalf("EOF after %d examples", pos)
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if idx != order[pos] || ex.ID != samples[order[pos]].ID {
				t.Fatalf("workers %d, position %d: got sample %d (%s), want %d", workers, pos, idx, ex.ID, order[pos])
			}
		}
		if _, _, err := l.Next(); err != io.EOF {
			t.Errorf("Next after the end: %v", err)
		}
		l.Close()
		if workers > 1 && peak.Load() < 2 {
			t.Errorf("workers %d: never ran two samples concurrently (peak %d)", workers, peak.Load())
		}
		if workers == 1 && peak.Load() != 1 {
			t.Errorf("one worker ran %d at once", peak.Load())
		}
	}
}

func TestLoaderErrorsAndClose(t *testing.T) {
	samples := loaderSamples(6)
	boom := errors.New("boom")
	fn := func(s Sample) (Example, error) {
		switch s.ID {
		case "s2":
			return Example{}, boom
		case "s4":
			panic("bad sample")
		}
		return Example{Encoded: Encoded{ID: s.ID}}, nil
	}
	l := NewLoader(samples, []int{0, 2, 1, 4, 9, 3}, 3, 2, fn)
	defer l.Close()
	type res struct {
		idx int
		err string
	}
	var got []res
	for {
		ex, idx, err := l.Next()
		if err == io.EOF {
			break
		}
		r := res{idx: idx}
		if err != nil {
			r.err = err.Error()
		} else if ex.ID != samples[idx].ID {
			t.Errorf("index %d carries %s", idx, ex.ID)
		}
		got = append(got, r)
		if len(got) > 10 {
			t.Fatal("loader does not end")
		}
	}
	if len(got) != 6 {
		t.Fatalf("got %d results: %+v", len(got), got)
	}
	for pos, w := range []struct {
		idx  int
		want string
	}{{0, ""}, {2, `sample 2 (id "s2"): boom`}, {1, ""}, {4, `sample 4 (id "s4"): panic while loading: bad sample`}, {9, "index 9 out of range"}, {3, ""}} {
		if got[pos].idx != w.idx || !strings.Contains(got[pos].err, w.want) || (w.want == "") != (got[pos].err == "") {
			t.Errorf("position %d: got %+v, want index %d error %q", pos, got[pos], w.idx, w.want)
		}
	}

	// Close while workers are blocked ahead of the consumer; Next then reports the closure.
	release := make(chan struct{})
	var started atomic.Int32
	slow := NewLoader(loaderSamples(100), nil, 4, 4, func(s Sample) (Example, error) {
		started.Add(1)
		<-release
		return Example{}, nil
	})
	time.Sleep(20 * time.Millisecond)
	if n := started.Load(); n > 4 {
		t.Errorf("%d samples started with 4 workers", n)
	}
	close(release)
	done := make(chan struct{})
	go func() { slow.Close(); slow.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	if _, _, err := slow.Next(); !errors.Is(err, ErrLoaderClosed) {
		t.Errorf("Next after Close: %v", err)
	}
}

func TestLoaderPrefetchBound(t *testing.T) {
	var calls atomic.Int32
	l := NewLoader(loaderSamples(100), nil, 8, 3, func(s Sample) (Example, error) {
		calls.Add(1)
		return Example{}, nil
	})
	defer l.Close()
	time.Sleep(30 * time.Millisecond)
	// Nothing consumed: at most prefetch queued slots + the one being dispatched.
	if n := calls.Load(); n > 4 {
		t.Errorf("%d samples prepared ahead with prefetch 3", n)
	}
	for i := 0; i < 10; i++ {
		if _, _, err := l.Next(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(30 * time.Millisecond)
	if n := calls.Load(); n > 14 {
		t.Errorf("%d samples prepared after consuming 10 with prefetch 3", n)
	}
}
