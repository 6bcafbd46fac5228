package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/switchkd/switchkd/engine"
	"github.com/switchkd/switchkd/models/tinyllava"
)

// `bench` on a small checkpoint: it runs, and its report is consistent with the model and the
// flags (the prompt's length, the tokens generated, the inference path the model uses).
func TestBenchReport(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "models", "tiny-a")
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "--model", dir, "--repeat", "1", "--new-tokens", "3", "--prompt-tokens", "20"}, &out, &errb); code != 0 {
		t.Fatalf("exit code %d: %s", code, errb.String())
	}
	var r struct {
		HostKernels     bool    `json:"host_kernels"`
		PrefillS        float64 `json:"prefill_s"`
		PrefillSeqLen   int     `json:"prefill_seq_len"`
		PromptText      int     `json:"prompt_text_tokens"`
		DecodeTokens    int     `json:"decode_tokens"`
		DecodePerS      float64 `json:"decode_tokens_per_s"`
		WeightsGiB      float64 `json:"float32_weights_gib"`
		PeakOverWeights float64 `json:"peak_rss_over_weights"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("bench output is not JSON: %v\n%s", err, out.String())
	}
	m, err := tinyllava.Load(dir, engine.MustBackend(""))
	if err != nil {
		t.Fatal(err)
	}
	if r.HostKernels != m.HostKernels {
		t.Errorf("host_kernels %v, but a model loaded on the default backend has %v", r.HostKernels, m.HostKernels)
	}
	if want := r.PromptText + m.Config.NumImageFeatures(); r.PrefillSeqLen != want {
		t.Errorf("prefill_seq_len %d, want %d text + image tokens = %d", r.PrefillSeqLen, r.PromptText, want)
	}
	if r.DecodeTokens != 3 || r.PrefillS <= 0 || r.DecodePerS <= 0 || r.WeightsGiB <= 0 || r.PeakOverWeights <= 0 {
		t.Errorf("implausible report: %+v", r)
	}
}
