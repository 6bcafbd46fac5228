package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Answer is one line of a LLaVA / TinyLLaVA answers file (model_vqa*.py output):
//
//	{"question_id": ..., "prompt": "...", "text": "...", "answer_id": "...", "model_id": "...", "metadata": {}}
//
// MMBench answers written with --all-rounds also carry "round_id" (the left rotation of the options).
type Answer struct {
	QuestionID string // the question_id, a JSON string or number, written as text
	Prompt     string
	Text       string
	AnswerID   string
	ModelID    string
	RoundID    int  // MMBench rotation, 0 when absent
	HasRound   bool // whether round_id was present
	HasPrompt  bool // whether a "prompt" string was present
	File       string
	Line       int // 1-based line in File, for error messages
}

// Question is one line of a LLaVA evaluation question file (llava_*.jsonl).
type Question struct {
	QuestionID string
	Image      string
	Text       string
	Category   string
	Line       int
}

// lineError is an error tied to a place in an input file.
func lineError(file string, line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...))
}

// idString turns a JSON id (string or number) into its canonical text. Numbers keep their JSON
// spelling, so 12 and "12" are the same id.
func idString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return "", false
	}
	if i, err := n.Int64(); err == nil {
		return strconv.FormatInt(i, 10), true
	}
	if f, err := n.Float64(); err == nil && f == float64(int64(f)) {
		return strconv.FormatInt(int64(f), 10), true
	}
	return n.String(), true
}

// forEachJSONLine calls fn for every non-blank line of a JSON-lines file, with its 1-based number.
func forEachJSONLine(path string, fn func(line int, obj map[string]json.RawMessage) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	line := 0
	for {
		b, err := r.ReadBytes('\n')
		if len(b) > 0 {
			line++
			t := bytes.TrimSpace(b)
			if len(t) > 0 {
				var obj map[string]json.RawMessage
				if e := json.Unmarshal(t, &obj); e != nil {
					return lineError(path, line, "not a JSON object: %v", e)
				}
				if e := fn(line, obj); e != nil {
					return e
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %v", path, line+1, err)
		}
	}
}

func getString(obj map[string]json.RawMessage, key string) (string, bool, error) {
	raw, ok := obj[key]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, fmt.Errorf("field %q is not a string", key)
	}
	return s, true, nil
}

// ReadAnswers reads a LLaVA answers file (JSON lines). question_id and text are required.
func ReadAnswers(path string) ([]Answer, error) {
	var out []Answer
	err := forEachJSONLine(path, func(line int, obj map[string]json.RawMessage) error {
		a := Answer{File: path, Line: line}
		id, ok := idString(obj["question_id"])
		if !ok {
			return lineError(path, line, "missing or invalid \"question_id\"")
		}
		a.QuestionID = id
		text, has, err := getString(obj, "text")
		if err != nil {
			return lineError(path, line, "%v", err)
		}
		if !has {
			return lineError(path, line, "missing \"text\"")
		}
		a.Text = text
		if p, has, err := getString(obj, "prompt"); err == nil && has {
			a.Prompt, a.HasPrompt = p, true
		}
		a.AnswerID, _, _ = getString(obj, "answer_id")
		a.ModelID, _, _ = getString(obj, "model_id")
		if raw, ok := obj["round_id"]; ok && string(bytes.TrimSpace(raw)) != "null" {
			var r int
			if err := json.Unmarshal(raw, &r); err != nil || r < 0 {
				return lineError(path, line, "\"round_id\" is not a non-negative integer")
			}
			a.RoundID, a.HasRound = r, true
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no answers", path)
	}
	return out, nil
}

// ReadQuestions reads a LLaVA evaluation question file (JSON lines with question_id, image, text,
// category).
func ReadQuestions(path string) ([]Question, error) {
	var out []Question
	err := forEachJSONLine(path, func(line int, obj map[string]json.RawMessage) error {
		q := Question{Line: line}
		id, ok := idString(obj["question_id"])
		if !ok {
			return lineError(path, line, "missing or invalid \"question_id\"")
		}
		q.QuestionID = id
		var err error
		if q.Image, _, err = getString(obj, "image"); err != nil {
			return lineError(path, line, "%v", err)
		}
		if q.Text, _, err = getString(obj, "text"); err != nil {
			return lineError(path, line, "%v", err)
		}
		if q.Category, _, err = getString(obj, "category"); err != nil {
			return lineError(path, line, "%v", err)
		}
		out = append(out, q)
		return nil
	})
	return out, err
}

// readJSONFile decodes a whole JSON file into v; a syntax or type error names the file and line.
func readJSONFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return lineError(path, lineAt(data, se.Offset), "invalid JSON: %v", err)
		case errors.As(err, &te):
			return lineError(path, lineAt(data, te.Offset), "unexpected JSON type: %v", err)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return lineError(path, lineAt(data, int64(len(data))), "truncated JSON")
		}
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}

// lineAt is the 1-based line holding byte offset off.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}

// jsonLineIndex maps byte offsets of a JSON document to lines; used to report the line of an
// element that decoded but is semantically wrong.
type jsonDoc struct {
	path string
	data []byte
}

func (d jsonDoc) errAt(off int64, format string, args ...any) error {
	return lineError(d.path, lineAt(d.data, off), format, args...)
}

// decodeArrayElems reads a JSON file whose top level is an array (or an object whose field key is
// an array, when key != "") and returns the raw elements with their starting byte offsets.
func decodeArrayElems(path, key string) (jsonDoc, []json.RawMessage, []int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return jsonDoc{}, nil, nil, err
	}
	doc := jsonDoc{path, data}
	dec := json.NewDecoder(bytes.NewReader(data))
	wrap := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return doc.errAt(se.Offset, "invalid JSON: %v", err)
		}
		return doc.errAt(dec.InputOffset(), "invalid JSON: %v", err)
	}
	tok, err := dec.Token()
	if err != nil {
		return doc, nil, nil, wrap(err)
	}
	if key != "" {
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return doc, nil, nil, doc.errAt(0, "expected a JSON object with a %q array", key)
		}
		found := false
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return doc, nil, nil, wrap(err)
			}
			if k, _ := kt.(string); k == key {
				found = true
				tok, err = dec.Token()
				if err != nil {
					return doc, nil, nil, wrap(err)
				}
				break
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return doc, nil, nil, wrap(err)
			}
		}
		if !found {
			return doc, nil, nil, fmt.Errorf("%s: no %q array", path, key)
		}
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return doc, nil, nil, doc.errAt(dec.InputOffset(), "expected a JSON array")
	}
	var elems []json.RawMessage
	var offs []int64
	for dec.More() {
		off := dec.InputOffset()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return doc, nil, nil, wrap(err)
		}
		// InputOffset before Decode points at the separator; step over ",", spaces.
		for off < int64(len(data)) && (data[off] == ',' || data[off] == ' ' || data[off] == '\n' || data[off] == '\r' || data[off] == '\t') {
			off++
		}
		elems = append(elems, raw)
		offs = append(offs, off)
	}
	return doc, elems, offs, nil
}

// pyLower approximates Python's str.lower() (Go's simple case mapping; identical for ASCII and
// for nearly all other text).
func pyLower(s string) string { return strings.ToLower(s) }

// isPySpace reports whether r is whitespace for Python's str.split() / str.strip().
func isPySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// pySplit is Python's str.split() with no separator.
func pySplit(s string) []string { return strings.FieldsFunc(s, isPySpace) }

// pyStrip is Python's str.strip() with no argument.
func pyStrip(s string) string { return strings.TrimFunc(s, isPySpace) }
