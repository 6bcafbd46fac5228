package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sort"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/models/tinyllava"
	"github.com/switchkd/switchkd/vlm"
)

func init() {
	register(&command{
		name:    "nll",
		summary: "Score LLaVA samples: mean cross-entropy over each sample's answer tokens.\nPrints one JSON line per sample: {\"id\", \"nll\", \"tokens\"}.",
		usage:   "--model DIR --data FILE.json --images DIR [--batch-size N]",
		setup: func(fs *flag.FlagSet) func([]string) error {
			model := fs.String("model", "", "TinyLLaVA model folder (config.json, safetensors, tokenizer.json)")
			dataPath := fs.String("data", "", "LLaVA JSON (or JSONL) file")
			images := fs.String("images", "", "folder the samples' image paths are relative to")
			batch := fs.Int("batch-size", 4, "samples per forward pass")
			backend := backendFlag(fs)
			return func(args []string) error {
				if err := requireFlags("model", *model, "data", *dataPath); err != nil {
					return err
				}
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *batch <= 0 {
					return usagef("--batch-size must be positive")
				}
				return runNLL(*model, *dataPath, *images, *backend, *batch)
			}
		},
	})
}

func backendFlag(fs *flag.FlagSet) *string {
	return fs.String("backend", "go", "compute backend: go (pure Go, CPU) or xla[:cuda|cpu] (needs a cgo build and a PJRT plugin)")
}

// profileFlag adds --cpuprofile FILE. The returned function wraps a command's work: it writes
// a CPU profile of run (for go tool pprof) when the flag is set.
func profileFlag(fs *flag.FlagSet) func(run func() error) error {
	path := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	return func(run func() error) error {
		if *path == "" {
			return run()
		}
		f, err := os.Create(*path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		runErr := run()
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil && runErr == nil {
			runErr = err
		}
		return runErr
	}
}

func runNLL(modelDir, dataPath, images, backend string, batchSize int) error {
	samples, err := data.ReadLLaVAJSON(dataPath)
	if err != nil {
		return err
	}
	v, err := vlm.Load(modelDir, backend)
	if err != nil {
		return err
	}
	// Prepare every sample first: a bad sample is reported before any output is written.
	inputs := make([]tinyllava.Input, len(samples))
	for i, s := range samples {
		if inputs[i], err = v.Input(s, images); err != nil {
			return err
		}
	}
	// Batch samples of similar length together; print in input order.
	order := make([]int, len(inputs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(inputs[order[a]].IDs) < len(inputs[order[b]].IDs) })
	results := make([]tinyllava.SampleNLL, len(inputs))
	prog := newProgress(os.Stderr, "nll", len(inputs))
	for start := 0; start < len(order); start += batchSize {
		idx := order[start:min(start+batchSize, len(order))]
		group := make([]tinyllava.Input, len(idx))
		for j, i := range idx {
			group[j] = inputs[i]
		}
		b, err := v.Model.Config.BuildBatch(group, 16)
		if err != nil {
			return err
		}
		res, err := v.Model.NLL(b)
		if err != nil {
			return err
		}
		for j, i := range idx {
			results[i] = res[j]
		}
		prog.add(len(idx))
	}
	prog.finish()
	enc := json.NewEncoder(stdout)
	for i, r := range results {
		line := struct {
			ID     string   `json:"id"`
			NLL    *float64 `json:"nll"`
			Tokens int      `json:"tokens"`
		}{ID: samples[i].ID, Tokens: r.Tokens}
		if r.Tokens > 0 {
			line.NLL = &results[i].NLL
		}
		if err := enc.Encode(line); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
	}
	return nil
}
