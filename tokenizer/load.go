package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// preStep is one pre-tokenizer: it splits a piece into smaller ones (and may rewrite them).
type preStep interface {
	apply(s string, emit func(string))
}

// splitStep is the Split pre-tokenizer with behavior Isolated or Removed.
type splitStep struct {
	m       matcher
	removed bool // behavior Removed: drop the matches (or, inverted, the gaps)
	invert  bool
}

func (st splitStep) apply(s string, emit func(string)) {
	if sm, ok := st.m.(streamMatcher); ok && !st.removed {
		// Isolated, and the pattern matches every character: every match is a piece.
		for i := 0; i < len(s); {
			e := sm.next(s, i)
			emit(s[i:e])
			i = e
		}
		return
	}
	var buf [64][2]int
	spans := st.m.find(s, buf[:0])
	keep := func(isMatch bool) bool { return !st.removed || isMatch == st.invert }
	prev := 0
	for _, sp := range spans {
		if sp[0] == sp[1] {
			continue // an empty match splits nothing
		}
		if prev < sp[0] && keep(false) {
			emit(s[prev:sp[0]])
		}
		if keep(true) {
			emit(s[sp[0]:sp[1]])
		}
		prev = sp[1]
	}
	if prev < len(s) && keep(false) {
		emit(s[prev:])
	}
}

// byteLevelStep is the ByteLevel pre-tokenizer.
type byteLevelStep struct {
	addPrefixSpace bool
	useRegex       bool
}

func (st byteLevelStep) apply(s string, emit func(string)) {
	st.split(s, func(piece string) { emit(byteLevelMap(piece)) })
}

// split is the step without the byte mapping: the prefix space and the GPT-2 regex.
func (st byteLevelStep) split(s string, emit func(string)) {
	if st.addPrefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	if !st.useRegex {
		emit(s)
		return
	}
	for i := 0; i < len(s); {
		e := gpt2Next(s, i)
		emit(s[i:e])
		i = e
	}
}

// Load reads a Hugging Face tokenizer.json; path is the file or a folder holding one.
func Load(path string) (*Tokenizer, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

type fileJSON struct {
	Version       json.RawMessage `json:"version"`
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
	AddedTokens   []AddedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type modelJSON struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 *bool           `json:"fuse_unk"`
	ByteFallback            *bool           `json:"byte_fallback"`
	IgnoreMerges            *bool           `json:"ignore_merges"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// parse builds a Tokenizer from the bytes of a tokenizer.json.
func parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if isNull(f.Model) {
		return nil, fmt.Errorf("no \"model\" section")
	}
	var mj modelJSON
	if err := json.Unmarshal(f.Model, &mj); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if mj.Type != "" && mj.Type != "BPE" {
		return nil, fmt.Errorf("model: unsupported type %q (only BPE)", mj.Type)
	}
	if mj.Dropout != nil && *mj.Dropout != 0 {
		return nil, fmt.Errorf("model: BPE dropout %v is not supported", *mj.Dropout)
	}
	if mj.ContinuingSubwordPrefix != nil && *mj.ContinuingSubwordPrefix != "" {
		return nil, fmt.Errorf("model: BPE continuing_subword_prefix %q is not supported", *mj.ContinuingSubwordPrefix)
	}
	if mj.EndOfWordSuffix != nil && *mj.EndOfWordSuffix != "" {
		return nil, fmt.Errorf("model: BPE end_of_word_suffix %q is not supported", *mj.EndOfWordSuffix)
	}
	if mj.ByteFallback != nil && *mj.ByteFallback {
		return nil, fmt.Errorf("model: BPE byte_fallback is not supported")
	}
	if mj.Vocab == nil {
		return nil, fmt.Errorf("model: no vocab")
	}
	merges, err := parseMerges(mj.Merges)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m := &bpeModel{vocab: mj.Vocab, merges: merges}
	if mj.UnkToken != nil {
		m.unkToken = *mj.UnkToken
	}
	if mj.FuseUnk != nil {
		m.fuseUnk = *mj.FuseUnk
	}
	if mj.IgnoreMerges != nil {
		m.ignoreMerges = *mj.IgnoreMerges
	}
	sections := map[string][]byte{}
	for name, raw := range map[string]json.RawMessage{
		"version": f.Version, "truncation": f.Truncation, "padding": f.Padding,
		"normalizer": f.Normalizer, "pre_tokenizer": f.PreTokenizer,
		"post_processor": f.PostProcessor, "decoder": f.Decoder,
	} {
		if len(raw) > 0 {
			sections[name] = compactJSON(raw)
		}
	}
	return build(m, f.AddedTokens, sections, true)
}

func isNull(raw json.RawMessage) bool {
	s := bytes.TrimSpace(raw)
	return len(s) == 0 || string(s) == "null"
}

func compactJSON(raw []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// parseMerges accepts merges as "a b" strings or as [a, b] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("merges: not a list: %w", err)
	}
	out := make([][2]string, 0, len(items))
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err == nil {
			if strings.HasPrefix(s, "#version") {
				continue
			}
			parts := strings.Split(s, " ")
			if len(parts) != 2 {
				return nil, fmt.Errorf("merges[%d] = %q: want two tokens separated by one space", i, s)
			}
			out = append(out, [2]string{parts[0], parts[1]})
			continue
		}
		var p []string
		if err := json.Unmarshal(it, &p); err != nil || len(p) != 2 {
			return nil, fmt.Errorf("merges[%d] = %s: want \"a b\" or [\"a\", \"b\"]", i, string(it))
		}
		out = append(out, [2]string{p[0], p[1]})
	}
	return out, nil
}

// build finishes a tokenizer: merge table, added tokens and the pipeline sections.
// fromFile selects Hugging Face's loading rule for added-token ids (an added token already in
// the vocabulary takes the vocabulary's id); otherwise a mismatch is an error.
func build(m *bpeModel, added []AddedToken, sections map[string][]byte, fromFile bool) (*Tokenizer, error) {
	m.vocabR = make(map[int]string, len(m.vocab))
	for tok, id := range m.vocab {
		if id < 0 {
			return nil, fmt.Errorf("model: vocab token %q has negative id %d", tok, id)
		}
		if prev, dup := m.vocabR[id]; dup {
			// Keep a deterministic choice; Hugging Face keeps an arbitrary one.
			if prev < tok {
				continue
			}
		}
		m.vocabR[id] = tok
	}
	m.mergeMap = make(map[uint64]mergeInfo, len(m.merges))
	for i, mg := range m.merges {
		a, ok := m.vocab[mg[0]]
		if !ok {
			return nil, fmt.Errorf("model: merges[%d] %q: token %q is not in the vocabulary", i, mg[0]+" "+mg[1], mg[0])
		}
		b, ok := m.vocab[mg[1]]
		if !ok {
			return nil, fmt.Errorf("model: merges[%d] %q: token %q is not in the vocabulary", i, mg[0]+" "+mg[1], mg[1])
		}
		c, ok := m.vocab[mg[0]+mg[1]]
		if !ok {
			return nil, fmt.Errorf("model: merges[%d] %q: merged token %q is not in the vocabulary", i, mg[0]+" "+mg[1], mg[0]+mg[1])
		}
		m.mergeMap[pairKey(a, b)] = mergeInfo{rank: int32(i), newID: int32(c)}
	}
	if m.unkToken != "" {
		if _, ok := m.vocab[m.unkToken]; !ok {
			return nil, fmt.Errorf("model: unk_token %q is not in the vocabulary", m.unkToken)
		}
	}
	m.cache = make(map[string][]int)

	t := &Tokenizer{
		model:        m,
		addedByID:    map[int]int{},
		addedContent: map[string]int{},
		addedDecode:  map[int]string{},
		special:      map[string]bool{},
		sections:     sections,
	}
	var err error
	if t.normalizers, err = parseNormalizer(sections["normalizer"]); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	if t.steps, err = parsePreTokenizer(sections["pre_tokenizer"]); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	// A final ByteLevel step is fused with the model: its pieces are byte-mapped only on a
	// cache miss, and the cache is keyed by the unmapped piece.
	if n := len(t.steps); n > 0 {
		if bl, ok := t.steps[n-1].(byteLevelStep); ok {
			t.steps = t.steps[:n-1]
			t.finalByteLevel = &bl
		}
	}
	if t.decoder, err = parseDecoder(sections["decoder"]); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}

	// Added tokens.
	byID := map[int]AddedToken{}
	for i, a := range added {
		if a.Content == "" {
			continue // Hugging Face ignores empty added tokens
		}
		if vid, ok := m.vocab[a.Content]; ok && vid != a.ID {
			if !fromFile {
				return nil, fmt.Errorf("added token %d %q: id %d but the vocabulary has it as %d", i, a.Content, a.ID, vid)
			}
			a.ID = vid
		}
		if a.ID < 0 {
			return nil, fmt.Errorf("added token %d %q: negative id %d", i, a.Content, a.ID)
		}
		if vt, ok := m.vocabR[a.ID]; ok && vt != a.Content {
			return nil, fmt.Errorf("added token %d %q: id %d is the vocabulary token %q", i, a.Content, a.ID, vt)
		}
		if prev, ok := t.addedContent[a.Content]; ok {
			delete(byID, prev)
		}
		if prev, ok := byID[a.ID]; ok {
			delete(t.addedContent, prev.Content)
		}
		byID[a.ID] = a
		t.addedContent[a.Content] = a.ID
	}
	for _, a := range byID {
		t.added = append(t.added, a)
	}
	sort.Slice(t.added, func(i, j int) bool { return t.added[i].ID < t.added[j].ID })
	var rawToks, normToks []AddedToken
	var rawPats, normPats []string
	for i, a := range t.added {
		t.addedByID[a.ID] = i
		if a.Special {
			t.special[a.Content] = true
		}
		dec := a.Content
		if a.Normalized {
			dec = t.normalize(a.Content)
			normToks, normPats = append(normToks, a), append(normPats, dec)
		} else {
			rawToks, rawPats = append(rawToks, a), append(rawPats, a.Content)
		}
		t.addedDecode[a.ID] = dec
	}
	for id := range m.vocabR {
		t.vocabSize = max(t.vocabSize, id+1)
	}
	for _, a := range t.added {
		t.vocabSize = max(t.vocabSize, a.ID+1)
	}
	t.rawAdded = newAddedMatcher(rawToks, rawPats)
	t.normAdded = newAddedMatcher(normToks, normPats)
	return t, nil
}

type typed struct {
	Type string `json:"type"`
}

func sectionType(raw []byte) (string, error) {
	var ty typed
	if err := json.Unmarshal(raw, &ty); err != nil {
		return "", err
	}
	return ty.Type, nil
}

func parseNormalizer(raw []byte) ([]norm.Form, error) {
	if isNull(raw) {
		return nil, nil
	}
	ty, err := sectionType(raw)
	if err != nil {
		return nil, err
	}
	switch ty {
	case "NFC":
		return []norm.Form{norm.NFC}, nil
	case "NFD":
		return []norm.Form{norm.NFD}, nil
	case "NFKC":
		return []norm.Form{norm.NFKC}, nil
	case "NFKD":
		return []norm.Form{norm.NFKD}, nil
	case "Sequence":
		var seq struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(raw, &seq); err != nil {
			return nil, err
		}
		var out []norm.Form
		for i, n := range seq.Normalizers {
			fs, err := parseNormalizer(n)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			out = append(out, fs...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported normalizer type %q (supported: NFC, NFD, NFKC, NFKD, Sequence, null)", ty)
}

func parsePreTokenizer(raw []byte) ([]preStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	ty, err := sectionType(raw)
	if err != nil {
		return nil, err
	}
	switch ty {
	case "Sequence":
		var seq struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &seq); err != nil {
			return nil, err
		}
		var out []preStep
		for i, p := range seq.PreTokenizers {
			st, err := parsePreTokenizer(p)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			out = append(out, st...)
		}
		return out, nil
	case "Split":
		var sp struct {
			Pattern struct {
				Regex  *string `json:"Regex"`
				String *string `json:"String"`
			} `json:"pattern"`
			Behavior string `json:"behavior"`
			Invert   bool   `json:"invert"`
		}
		if err := json.Unmarshal(raw, &sp); err != nil {
			return nil, fmt.Errorf("Split: %w", err)
		}
		st := splitStep{invert: sp.Invert}
		switch sp.Behavior {
		case "Isolated":
		case "Removed":
			st.removed = true
		default:
			return nil, fmt.Errorf("Split: unsupported behavior %q (supported: Isolated, Removed)", sp.Behavior)
		}
		switch {
		case sp.Pattern.Regex != nil:
			m, err := newMatcher(*sp.Pattern.Regex)
			if err != nil {
				return nil, fmt.Errorf("Split: regex %q: %w", *sp.Pattern.Regex, err)
			}
			st.m = m
		case sp.Pattern.String != nil:
			st.m = literalMatcher{*sp.Pattern.String}
		default:
			return nil, fmt.Errorf("Split: pattern needs Regex or String")
		}
		return []preStep{st}, nil
	case "ByteLevel":
		bl := struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}{}
		if err := json.Unmarshal(raw, &bl); err != nil {
			return nil, fmt.Errorf("ByteLevel: %w", err)
		}
		st := byteLevelStep{addPrefixSpace: bl.AddPrefixSpace, useRegex: bl.UseRegex == nil || *bl.UseRegex}
		return []preStep{st}, nil
	}
	return nil, fmt.Errorf("unsupported pre_tokenizer type %q (supported: Split, ByteLevel, Sequence, null)", ty)
}

func parseDecoder(raw []byte) (decoderKind, error) {
	if isNull(raw) {
		return decoderNone, nil
	}
	ty, err := sectionType(raw)
	if err != nil {
		return 0, err
	}
	if ty == "ByteLevel" {
		return decoderByteLevel, nil
	}
	return 0, fmt.Errorf("unsupported decoder type %q (supported: ByteLevel, null)", ty)
}
