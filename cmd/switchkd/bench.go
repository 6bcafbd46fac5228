package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/models/tinyllava"
	"github.com/switchkd/switchkd/vlm"
)

func init() {
	register(&command{
		name:    "bench",
		summary: "Measure load time, peak RSS, prefill and generation tokens/s of a model (see docs/BENCHMARKS.md).",
		usage:   "--model DIR [--prompt-tokens N] [--new-tokens N] [--batch N] [--repeat N]",
		setup: func(fs *flag.FlagSet) func([]string) error {
			model := fs.String("model", "", "TinyLLaVA model folder")
			promptTokens := fs.Int("prompt-tokens", 64, "text tokens in the prompt (besides the image)")
			newTokens := fs.Int("new-tokens", 32, "tokens to generate (no early stop)")
			batch := fs.Int("batch", 1, "prompts decoded together")
			repeat := fs.Int("repeat", 2, "timed repetitions after one warm-up (best is reported)")
			backend := backendFlag(fs)
			profile := profileFlag(fs)
			return func(args []string) error {
				if err := requireFlags("model", *model); err != nil {
					return err
				}
				if *repeat < 1 || *newTokens < 1 || *batch < 1 {
					return usagef("--repeat, --new-tokens and --batch must be at least 1")
				}
				return profile(func() error { return runBench(*model, *backend, *promptTokens, *newTokens, *batch, *repeat) })
			}
		},
	})
}

// benchPrompt is the reference script's benchmark question, lengthened to promptTokens.
func benchPrompt(v *vlm.VLM, promptTokens int) []int {
	q := "Describe the picture in detail."
	for {
		ids := data.EncodePrompt(v.Tokenizer, data.GenerationPrompt(q, true))
		if len(ids)-1 >= promptTokens {
			return ids
		}
		q += " What else?"
	}
}

func runBench(dir, backend string, promptTokens, newTokens, batch, repeat int) error {
	t0 := time.Now()
	v, err := vlm.Load(dir, backend)
	if err != nil {
		return err
	}
	res := map[string]any{"load_s": time.Since(t0).Seconds(), "batch": batch, "rss_after_load_gib": procStatusGiB("VmRSS:")}
	weights := 0
	for _, t := range v.Model.Params.T {
		weights += t.Shape().Size() * 4
	}
	res["float32_weights_gib"] = float64(weights) / (1 << 30)
	// Which inference path runs the prefill (docs/BENCHMARKS.md): graphs per layer part with host
	// kernels between them, or one graph.
	res["host_kernels"] = v.Model.HostKernels
	ids := benchPrompt(v, promptTokens)
	c := v.Model.Config
	rng := rand.New(rand.NewPCG(0, 0))
	var inputs []tinyllava.Input
	for i := 0; i < batch; i++ {
		px := make([]float32, c.Vision.NumChannels*c.Vision.ImageSize*c.Vision.ImageSize)
		for j := range px {
			px[j] = float32(rng.Float64()*2 - 1)
		}
		inputs = append(inputs, tinyllava.Input{ID: fmt.Sprint(i), IDs: ids, Images: [][]float32{px}})
	}
	seq := len(ids) - 1 + c.NumImageFeatures()
	res["prompt_text_tokens"] = len(ids) - 1
	res["prefill_seq_len"] = seq
	// Prefill and decoding are timed within the same generation runs (to the first chosen
	// token, then to the last), each the best of the timed runs; the first run compiles.
	// (Subtracting a separately timed prefill-only run from a full one could give a negative
	// decode time for small models, whose few decoding steps are shorter than the noise.)
	prefill, prefillCPU, decode := 0.0, 0.0, 0.0
	for r := 0; r <= repeat; r++ {
		var first, last time.Time
		var firstCPU float64
		t, c := time.Now(), cpuSeconds()
		out, err := v.Model.Generate(inputs, tinyllava.GenerateOptions{MaxNewTokens: newTokens + 1, StopIDs: []int{},
			OnStep: func(step int) {
				last = time.Now()
				if step == 0 {
					first, firstCPU = last, cpuSeconds()
				}
			}})
		if err == nil && len(out[0]) != newTokens+1 {
			err = fmt.Errorf("generated %d tokens, want %d", len(out[0]), newTokens+1)
		}
		if err != nil {
			return err
		}
		if r == 0 {
			continue
		}
		if p := first.Sub(t).Seconds(); prefill == 0 || p < prefill {
			prefill, prefillCPU = p, firstCPU-c
		}
		if d := last.Sub(first).Seconds(); decode == 0 || d < decode {
			decode = d
		}
	}
	res["prefill_cpu_s"] = prefillCPU
	res["prefill_s"] = prefill
	res["prefill_tokens_per_s"] = float64(batch*seq) / prefill
	res["decode_tokens"] = newTokens
	res["decode_s"] = decode
	res["decode_tokens_per_s"] = float64(batch*newTokens) / decode
	res["peak_rss_gib"] = peakRSSGiB()
	res["peak_rss_over_weights"] = peakRSSGiB() / (float64(weights) / (1 << 30))
	b, _ := json.MarshalIndent(res, "", " ")
	fmt.Fprintln(stdout, string(b))
	return nil
}

// peakRSSGiB reads VmHWM from /proc/self/status (Linux); 0 elsewhere.
func peakRSSGiB() float64 { return procStatusGiB("VmHWM:") }

// procStatusGiB reads a kB field of /proc/self/status (Linux); 0 elsewhere.
func procStatusGiB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, field)), "%f", &kb)
			return kb / (1 << 20)
		}
	}
	return 0
}

// cpuSeconds is the process's user + system CPU time from /proc/self/stat (Linux, whose
// /proc reports it in USER_HZ = 100 ticks per second); 0 elsewhere.
func cpuSeconds() float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	var u, st float64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &st)
	return (u + st) / 100
}
