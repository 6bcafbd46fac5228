package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/distill"
	"github.com/switchkd/switchkd/engine"
	"github.com/switchkd/switchkd/models/tinyllava"
	"github.com/switchkd/switchkd/train"
)

func init() {
	register(&command{
		name:    "bench-step",
		summary: "Time Switch-KD training steps on random models (docs/BENCHMARKS.md).\nPresets: small (tiny widths), qwen05 (TinyLLaVA-Qwen2.5-0.5B student / Qwen2.5-3B teacher widths, SigLIP-so400m, vocab 151936, --layers layers each).",
		usage:   "[--preset small|qwen05] [--layers N] [--steps N] [--batch N] [--answer-tokens N] [--losses-window SECONDS]",
		setup: func(fs *flag.FlagSet) func([]string) error {
			preset := fs.String("preset", "small", "model shapes: small or qwen05")
			layers := fs.Int("layers", 2, "LLM and vision layers of each model (qwen05)")
			steps := fs.Int("steps", 3, "timed steps (after one warm-up step)")
			batch := fs.Int("batch", 1, "samples per step")
			answer := fs.Int("answer-tokens", 32, "supervised tokens per sample")
			window := fs.Float64("losses-window", 3, "time the losses alone for at least this many seconds (and at least --steps runs); the best run is reported")
			backend := backendFlag(fs)
			profile := profileFlag(fs)
			return func(args []string) error {
				if *window < 0 {
					return usagef("--losses-window must be >= 0, got %g", *window)
				}
				return profile(func() error {
					return runBenchStep(*preset, *layers, *steps, *batch, *answer, time.Duration(*window*float64(time.Second)), *backend)
				})
			}
		},
	})
}

func presetConfigs(preset string, layers int) (teacher, student string, err error) {
	mk := func(h, inter, heads, kv, nl, vocab, vh, vinter, vheads, vl, img, patch int) string {
		return fmt.Sprintf(`{"model_type":"tinyllava","connector_type":"mlp2x_gelu","tokenizer_model_max_length":4096,
		 "text_config":{"model_type":"qwen2","vocab_size":%d,"hidden_size":%d,"intermediate_size":%d,"num_hidden_layers":%d,
		   "num_attention_heads":%d,"num_key_value_heads":%d,"rope_theta":1000000,"rms_norm_eps":1e-6,"tie_word_embeddings":true,"max_position_embeddings":32768},
		 "vision_config":{"model_type":"siglip_vision_model","hidden_size":%d,"intermediate_size":%d,"num_hidden_layers":%d,
		   "num_attention_heads":%d,"image_size":%d,"patch_size":%d,"layer_norm_eps":1e-6}}`, vocab, h, inter, nl, heads, kv, vh, vinter, vl+1, vheads, img, patch)
	}
	switch preset {
	case "small":
		return mk(128, 256, 4, 2, 2, 512, 64, 128, 4, 2, 64, 8), mk(64, 128, 4, 2, 2, 512, 64, 128, 4, 2, 64, 8), nil
	case "qwen05":
		return mk(2048, 11008, 16, 2, layers, 151936, 1152, 4304, 16, layers, 384, 14),
			mk(896, 4864, 14, 2, layers, 151936, 1152, 4304, 16, layers, 384, 14), nil
	}
	return "", "", usagef("unknown preset %q (small, qwen05)", preset)
}

func runBenchStep(preset string, layers, steps, batch, answer int, window time.Duration, backend string) error {
	tj, sj, err := presetConfigs(preset, layers)
	if err != nil {
		return err
	}
	tc, err := tinyllava.ParseConfig([]byte(tj))
	if err != nil {
		return err
	}
	sc, err := tinyllava.ParseConfig([]byte(sj))
	if err != nil {
		return err
	}
	b, err := engine.Backend(backend)
	if err != nil {
		return err
	}
	teacher, err := tinyllava.New(tc, tinyllava.RandomParams(tc, 0.02, 1), b)
	if err != nil {
		return err
	}
	student, err := tinyllava.New(sc, tinyllava.RandomParams(sc, 0.02, 2), b)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var items []train.Sample
	for i := 0; i < batch; i++ {
		px := make([]float32, 3*sc.Vision.ImageSize*sc.Vision.ImageSize)
		for j := range px {
			px[j] = float32(rng.Float64()*2 - 1)
		}
		ids := []int{1, tinyllava.ImageTokenIndex}
		labels := []int{-100, -100}
		for j := 0; j < 32; j++ { // question
			ids, labels = append(ids, 2+rng.IntN(400)), append(labels, -100)
		}
		for j := 0; j < answer; j++ {
			tok := 2 + rng.IntN(400)
			ids, labels = append(ids, tok), append(labels, tok)
		}
		in := tinyllava.Input{ID: fmt.Sprint(i), IDs: ids, Labels: labels, Images: [][]float32{px}}
		items = append(items, train.Sample{Student: in, Teacher: in})
	}
	out, err := os.MkdirTemp("", "switchkd-bench-step-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out)
	tr := &train.Trainer{Student: student, Teacher: teacher,
		Stages: []train.Stage{{Name: "switchkd", Steps: steps + 1, LR: 1e-5, Train: []train.Module{train.Vision, train.Connector, train.LLM}, Objective: train.DefaultObjective()}},
		Opt:    train.Options{Optimizer: train.DefaultAdamW(), GlobalBatch: batch, MicroBatch: batch, SeqBucket: 32, PosBucket: 32, Out: out, KeepLast: 1},
		Feed:   &train.SliceFeed{Items: items}}
	start := time.Now()
	if err := tr.Run(); err != nil {
		return err
	}
	total := time.Since(start)
	lines, err := train.ReadMetrics(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		return err
	}
	best, sum, opt := 0.0, 0.0, 0.0
	for _, m := range lines[1:] {
		sum += m.StepSec
		opt += m.OptSec
		if best == 0 || m.StepSec < best {
			best = m.StepSec
		}
	}
	n := answer * batch
	lossSec, err := timeLosses(padTo32(n), min(tc.Text.VocabSize, sc.Text.VocabSize), steps, window)
	if err != nil {
		return err
	}
	res := map[string]any{
		"preset": preset, "layers": layers, "batch": batch, "seq_len": 2 + 32 + answer - 1 + sc.NumImageFeatures(),
		"supervised_tokens": n, "step_s_best": best, "step_s_mean": sum / float64(len(lines)-1),
		"optimizer_s_mean": opt / float64(len(lines)-1),
		"tokens_per_s":     float64(batch*(2+32+answer-1+sc.NumImageFeatures())) / best,
		"losses_fwd_bwd_s": lossSec, "losses_share": lossSec / best,
		"wall_s_incl_compile": total.Seconds(), "peak_rss_gib": peakRSSGiB(),
	}
	bs, _ := json.MarshalIndent(res, "", " ")
	fmt.Fprintln(stdout, string(bs))
	return nil
}

func padTo32(n int) int { return (n + 31) / 32 * 32 }

// timeLosses times forward+backward of CE + BiLD + DBiLD(T, S) + DBiLD(T, W) on random logits
// [n, v]: the distillation losses of a step (student S with its CE and BiLD, the switch W with
// its own DBiLD, as in the step, so that no term repeats another's work).
func timeLosses(n, v, reps int, window time.Duration) (float64, error) {
	be := engine.MustBackend("")
	e, err := NewExec(be, func(t, s, sw, w *Node, lab *Node) []*Node {
		o := train.DefaultObjective()
		// DBiLD's top-M selections are built first: BiLD's top-8 are their prefixes (the
		// selections of one graph are shared, see distill.TopMIndices).
		loss := ReduceAllSum(distill.DBiLD(t, s, w, o.DBiLD))
		loss = Add(loss, ReduceAllSum(distill.DBiLD(t, sw, w, o.DBiLD)))
		loss = Add(loss, ReduceAllSum(distill.BiLD(t, s, w, 8, 3)))
		loss = Add(loss, ReduceAllSum(distill.CE(s, lab, w)))
		return Gradient(loss, s, sw)
	})
	if err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(3, 4))
	mk := func() *tensors.Tensor {
		x := make([]float32, n*v)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 3)
		}
		return tensors.FromFlatDataAndDimensions(x, n, v)
	}
	t, s, sw := mk(), mk(), mk()
	w := make([]float32, n)
	lab := make([]int32, n)
	for i := range w {
		w[i], lab[i] = 1, int32(rng.IntN(v))
	}
	// Best of at least reps runs (after one warm-up) and of at least window of timed runs: a
	// window of a fraction of a second (100 small-preset runs) can fall entirely within another
	// process's burst on a 2-core machine, and its best then be 30% high.
	best := 0.0
	var timed time.Duration
	for r := 0; r <= reps || (timed < window && r <= lossesMaxRuns); r++ {
		st := time.Now()
		if _, err := e.Exec(t, s, sw, tensors.FromFlatDataAndDimensions(w, n), tensors.FromFlatDataAndDimensions(lab, n)); err != nil {
			return 0, err
		}
		d := time.Since(st)
		if r > 0 {
			timed += d
			if best == 0 || d.Seconds() < best {
				best = d.Seconds()
			}
		}
	}
	return best, nil
}

// lossesMaxRuns caps the losses' timed runs (see timeLosses).
const lossesMaxRuns = 2000
