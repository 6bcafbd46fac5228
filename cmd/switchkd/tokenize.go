package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/switchkd/switchkd/tokenizer"
)

// tokenizeStdin is what "--input -" reads; tests replace it.
var tokenizeStdin io.Reader = os.Stdin

func init() {
	register(&command{
		name: "tokenize",
		summary: "Encode text with a Hugging Face tokenizer.json, exactly as tokenizer.encode(text).ids\n" +
			"(no special tokens added). Each input line is a JSON string; prints one JSON array of ids per line.",
		usage: "--tokenizer PATH --input FILE.jsonl|-",
		setup: func(fs *flag.FlagSet) func([]string) error {
			tokPath := fs.String("tokenizer", "", "tokenizer.json, or a model folder holding one")
			input := fs.String("input", "", "JSONL file of strings, one per line (- for stdin)")
			return func(args []string) error {
				if err := requireFlags("tokenizer", *tokPath, "input", *input); err != nil {
					return err
				}
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				return runTokenize(*tokPath, *input, stdout)
			}
		},
	})
}

func runTokenize(tokPath, input string, out io.Writer) error {
	tk, err := tokenizer.Load(tokPath)
	if err != nil {
		return err
	}
	var r io.Reader
	name := input
	if input == "-" {
		r, name = tokenizeStdin, "stdin"
	} else {
		f, err := os.Open(input)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	// Read and check every line first, so a bad line gives an error and no partial output.
	var texts []string
	br := bufio.NewReader(r)
	for ln := 1; ; ln++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimRight(line, "\r\n")
			var s string
			if err := json.Unmarshal(line, &s); err != nil {
				return fmt.Errorf("%s:%d: want a JSON string: %v", name, ln, err)
			}
			texts = append(texts, s)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	w := bufio.NewWriter(out)
	var buf []byte
	for _, s := range texts {
		buf = append(buf[:0], '[')
		for i, id := range tk.Encode(s) {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendInt(buf, int64(id), 10)
		}
		buf = append(buf, "]\n"...)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return w.Flush()
}
