package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// Sample is one LLaVA-format record.
type Sample struct {
	ID            string // "id" (strings and numbers accepted; optional)
	Image         string // "image", relative to the image folder; "" when the record has no image
	Conversations []Turn
}

// describe names a sample in error messages: `sample 12 (id "000123")`.
func describe(index int, id string) string {
	if id == "" {
		return fmt.Sprintf("sample %d", index)
	}
	return fmt.Sprintf("sample %d (id %q)", index, id)
}

// ReadLLaVAJSON reads a LLaVA dataset: a JSON array of records
// {"id", "image" (optional), "conversations": [{"from": "human"|"gpt", "value": "..."}...]},
// or, for files ending in .jsonl (or whose first non-blank byte is not '['), one record per line.
// Every record is validated (required fields and types, roles alternating human/gpt after an
// optional leading non-human turn, one answer per question); errors name the file and the sample
// index and id. The array form is streamed, so big files do not need twice their size in memory.
func ReadLLaVAJSON(path string) ([]Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: opening dataset: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	jsonl := strings.HasSuffix(strings.ToLower(path), ".jsonl")
	if !jsonl {
		// Peek at the first non-blank byte.
		for {
			b, err := br.ReadByte()
			if err == io.EOF {
				return nil, fmt.Errorf("data: %s: empty dataset file", path)
			}
			if err != nil {
				return nil, fmt.Errorf("data: reading %s: %w", path, err)
			}
			if b == ' ' || b == '\t' || b == '\r' || b == '\n' || b == 0xEF || b == 0xBB || b == 0xBF {
				continue
			}
			br.UnreadByte()
			jsonl = b != '['
			break
		}
	}
	var samples []Sample
	if jsonl {
		line := 0
		for {
			raw, err := br.ReadBytes('\n')
			if len(raw) > 0 {
				line++
				raw = bytes.TrimSpace(raw)
				if len(raw) > 0 {
					s, perr := parseSample(raw, len(samples))
					if perr != nil {
						return nil, fmt.Errorf("data: %s line %d: %w", path, line, perr)
					}
					samples = append(samples, s)
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("data: reading %s: %w", path, err)
			}
		}
		return samples, nil
	}
	dec := json.NewDecoder(br)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, fmt.Errorf("data: %s: want a JSON array of samples (err %v)", path, err)
	}
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("data: %s: sample %d: malformed JSON (at byte %d): %w", path, len(samples), dec.InputOffset(), err)
		}
		s, err := parseSample(raw, len(samples))
		if err != nil {
			return nil, fmt.Errorf("data: %s: %w", path, err)
		}
		samples = append(samples, s)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("data: %s: malformed JSON after sample %d: %w", path, len(samples)-1, err)
	}
	return samples, nil
}

// parseSample decodes and validates one record.
func parseSample(raw []byte, index int) (Sample, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return Sample{}, fmt.Errorf("%s: malformed JSON record: %w", describe(index, ""), err)
	}
	if obj == nil {
		return Sample{}, fmt.Errorf("%s: record is null, want an object", describe(index, ""))
	}
	var s Sample
	if rawID, ok := obj["id"]; ok && string(rawID) != "null" {
		var str string
		var num json.Number
		if err := json.Unmarshal(rawID, &str); err == nil {
			s.ID = str
		} else if err := json.Unmarshal(rawID, &num); err == nil {
			s.ID = num.String()
		} else {
			return Sample{}, fmt.Errorf("%s: id must be a string or a number, got %s", describe(index, ""), rawID)
		}
	}
	name := describe(index, s.ID)
	if rawImg, ok := obj["image"]; ok && string(rawImg) != "null" {
		if err := json.Unmarshal(rawImg, &s.Image); err != nil {
			return Sample{}, fmt.Errorf("%s: image must be a string (one image per sample), got %s", name, rawImg)
		}
		if s.Image == "" {
			return Sample{}, fmt.Errorf("%s: image is an empty string", name)
		}
	}
	rawConv, ok := obj["conversations"]
	if !ok || string(rawConv) == "null" {
		return Sample{}, fmt.Errorf("%s: missing \"conversations\"", name)
	}
	var turns []map[string]json.RawMessage
	if err := json.Unmarshal(rawConv, &turns); err != nil {
		return Sample{}, fmt.Errorf("%s: \"conversations\" must be an array of {from, value} objects: %w", name, err)
	}
	for i, t := range turns {
		var turn Turn
		for _, field := range []struct {
			key string
			dst *string
		}{{"from", &turn.From}, {"value", &turn.Value}} {
			v, ok := t[field.key]
			if !ok || string(v) == "null" {
				return Sample{}, fmt.Errorf("%s: turn %d: missing %q", name, i, field.key)
			}
			if err := json.Unmarshal(v, field.dst); err != nil {
				return Sample{}, fmt.Errorf("%s: turn %d: %q must be a string, got %s", name, i, field.key, v)
			}
		}
		s.Conversations = append(s.Conversations, turn)
	}
	if _, _, err := splitQA(s.Conversations); err != nil {
		return Sample{}, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// sampleError wraps an error with the sample's description.
func sampleError(index int, s Sample, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("data: %s: %w", describe(index, s.ID), err)
}
