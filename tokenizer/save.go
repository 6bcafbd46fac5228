package tokenizer

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Pipeline sections, as a Hugging Face tokenizer.json writes them.
const (
	byteLevelNoRegexJSON = `{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}`
)

func pipelineSections(p Pipeline) (map[string][]byte, error) {
	s := map[string][]byte{"version": []byte(`"1.0"`)}
	switch p {
	case PipelineQwen2:
		re, _ := marshalNoEscape(QwenPattern)
		s["normalizer"] = []byte(`{"type":"NFC"}`)
		s["pre_tokenizer"] = []byte(`{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":` +
			string(re) + `},"behavior":"Isolated","invert":false},` + byteLevelNoRegexJSON + `]}`)
		s["post_processor"] = []byte(byteLevelNoRegexJSON)
		s["decoder"] = []byte(byteLevelNoRegexJSON)
	case PipelineGPT2:
		s["pre_tokenizer"] = []byte(`{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}`)
		s["post_processor"] = []byte(`{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true}`)
		s["decoder"] = []byte(`{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}`)
	default:
		return nil, fmt.Errorf("tokenizer: unknown pipeline %d", p)
	}
	return s, nil
}

// New builds a tokenizer from a vocabulary, merges (in rank order) and added tokens, with the
// pipeline chosen in opts. An added token whose ID is negative gets the vocabulary's id when
// its content is in the vocabulary, else the next free id.
func New(vocab map[string]int, merges [][2]string, added []AddedToken, opts Options) (*Tokenizer, error) {
	sections, err := pipelineSections(opts.Pipeline)
	if err != nil {
		return nil, err
	}
	v := make(map[string]int, len(vocab))
	next := 0
	for tok, id := range vocab {
		v[tok] = id
		next = max(next, id+1)
	}
	for _, a := range added {
		next = max(next, a.ID+1)
	}
	ad := make([]AddedToken, len(added))
	for i, a := range added {
		if a.ID < 0 {
			if id, ok := v[a.Content]; ok {
				a.ID = id
			} else {
				a.ID = next
				next++
			}
		}
		ad[i] = a
	}
	m := &bpeModel{vocab: v, merges: append([][2]string(nil), merges...), ignoreMerges: opts.IgnoreMerges}
	t, err := build(m, ad, sections, false)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: New: %w", err)
	}
	return t, nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// Save writes the tokenizer as a Hugging Face tokenizer.json (vocabulary in id order, merges
// as pairs). The file is written to a temporary file in the same folder and renamed into
// place, so a reader never sees a partial file.
func (t *Tokenizer) Save(path string) error {
	data, err := t.marshal()
	if err != nil {
		return fmt.Errorf("tokenizer: save %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("tokenizer: save %s: %w", path, err)
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("tokenizer: save %s: %w", path, werr)
	}
	return nil
}

func (t *Tokenizer) marshal() ([]byte, error) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	section := func(name string) []byte {
		if s, ok := t.sections[name]; ok && len(s) > 0 {
			return s
		}
		return []byte("null")
	}
	version := section("version")
	if string(version) == "null" {
		version = []byte(`"1.0"`)
	}
	w.WriteString(`{"version":`)
	w.Write(version)
	w.WriteString(`,"truncation":`)
	w.Write(section("truncation"))
	w.WriteString(`,"padding":`)
	w.Write(section("padding"))
	w.WriteString(",\"added_tokens\":[")
	for i, a := range t.added {
		if i > 0 {
			w.WriteString(",")
		}
		js, err := marshalNoEscape(a)
		if err != nil {
			return nil, err
		}
		w.WriteString("\n")
		w.Write(js)
	}
	w.WriteString("],\n")
	for _, name := range []string{"normalizer", "pre_tokenizer", "post_processor", "decoder"} {
		fmt.Fprintf(w, "%q:", name)
		w.Write(section(name))
		w.WriteString(",\n")
	}
	m := t.model
	unk := []byte("null")
	if m.unkToken != "" {
		unk, _ = marshalNoEscape(m.unkToken)
	}
	fmt.Fprintf(w, `"model":{"type":"BPE","dropout":null,"unk_token":%s,"continuing_subword_prefix":"","end_of_word_suffix":"","fuse_unk":%t,"byte_fallback":false,"ignore_merges":%t,`,
		unk, m.fuseUnk, m.ignoreMerges)
	w.WriteString("\n\"vocab\":{")
	// Every vocabulary entry, in id order (ties, which only a malformed file has, by string).
	type entry struct {
		tok string
		id  int
	}
	entries := make([]entry, 0, len(m.vocab))
	for tok, id := range m.vocab {
		entries = append(entries, entry{tok, id})
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if a.id != b.id {
			return cmp.Compare(a.id, b.id)
		}
		return strings.Compare(a.tok, b.tok)
	})
	for i, e := range entries {
		if i > 0 {
			w.WriteString(",")
		}
		js, err := marshalNoEscape(e.tok)
		if err != nil {
			return nil, err
		}
		w.WriteString("\n")
		w.Write(js)
		w.WriteString(":")
		w.WriteString(strconv.Itoa(e.id))
	}
	w.WriteString("},\n\"merges\":[")
	for i, mg := range m.merges {
		if i > 0 {
			w.WriteString(",")
		}
		js, err := marshalNoEscape(mg[:])
		if err != nil {
			return nil, err
		}
		w.WriteString("\n")
		w.Write(js)
	}
	w.WriteString("]}}\n")
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
