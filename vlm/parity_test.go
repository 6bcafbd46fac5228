package vlm

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/models/tinyllava"
)

// fixture is written by reference/tinyllava_ref.py (float64 PyTorch, from-scratch TinyLLaVA).
type fixture struct {
	Samples []struct {
		ID         string      `json:"id"`
		InputIDs   []int       `json:"input_ids"`
		Labels     []int       `json:"labels"`
		SeqLen     int         `json:"seq_len"`
		NLL        float64     `json:"nll"`
		Tokens     int         `json:"tokens"`
		Logits     [][]float64 `json:"logits"`
		NumImgTok  int         `json:"num_image_tokens"`
		SplicedLab []int       `json:"spliced_labels"`
	} `json:"samples"`
	PixelValues struct {
		Image  string    `json:"image"`
		Shape  []int     `json:"shape"`
		Values []float64 `json:"values"`
	} `json:"pixel_values"`
	Generation []struct {
		Image        string `json:"image"`
		Question     string `json:"question"`
		InputIDs     []int  `json:"input_ids"`
		MaxNewTokens int    `json:"max_new_tokens"`
		OutputIDs    []int  `json:"output_ids"`
		Stop         string `json:"stop"`
	} `json:"generation"`
}

var parityModels = []string{"tiny-a", "tiny-b", "tiny-c"}

func loadFixture(t *testing.T, name string) (string, *fixture) {
	dir := filepath.Join("..", "testdata", "models", name)
	b, err := os.ReadFile(filepath.Join(dir, "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return dir, &f
}

func TestParityWithPyTorch(t *testing.T) {
	for _, name := range parityModels {
		t.Run(name, func(t *testing.T) {
			dir, f := loadFixture(t, name)
			v, err := Load(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			samples, err := data.ReadLLaVAJSON(filepath.Join(dir, "data.json"))
			if err != nil {
				t.Fatal(err)
			}
			if len(samples) != len(f.Samples) {
				t.Fatalf("%d samples in data.json, %d in the fixture", len(samples), len(f.Samples))
			}
			images := filepath.Join(dir, "images")
			var inputs []tinyllava.Input
			for i, s := range samples {
				in, err := v.Input(s, images)
				if err != nil {
					t.Fatal(err)
				}
				fs := f.Samples[i]
				if !slices.Equal(in.IDs, fs.InputIDs) {
					t.Errorf("%s: input ids\n got %v\nwant %v", fs.ID, in.IDs, fs.InputIDs)
				}
				if !slices.Equal(in.Labels, fs.Labels) {
					t.Errorf("%s: labels\n got %v\nwant %v", fs.ID, in.Labels, fs.Labels)
				}
				inputs = append(inputs, in)
			}
			// Preprocessed pixels of one image.
			img, err := data.LoadImage(filepath.Join(images, f.PixelValues.Image))
			if err != nil {
				t.Fatal(err)
			}
			px, err := data.Preprocess(img, v.PP)
			if err != nil {
				t.Fatal(err)
			}
			if len(px) != len(f.PixelValues.Values) {
				t.Fatalf("pixels: %d values, want %d", len(px), len(f.PixelValues.Values))
			}
			for i := range px {
				// PIL and our bicubic may differ by one 8-bit level: 1/255 / std 0.5.
				if d := math.Abs(float64(px[i]) - f.PixelValues.Values[i]); d > 2.0/255*1.0001 {
					t.Fatalf("pixel %d: %v, want %v", i, px[i], f.PixelValues.Values[i])
				}
			}
			// Both inference paths: one graph, and the softmax and activations on the
			// host between graphs per layer part (tinyllava.Model.HostKernels).
			for _, host := range []bool{false, true} {
				v.Model.HostKernels = host
				t.Run(fmt.Sprintf("hostkernels=%v", host), func(t *testing.T) {
					// Per-sample NLL, batched, and full logits of the samples that carry them.
					b, err := v.Model.Config.BuildBatch(inputs, 16)
					if err != nil {
						t.Fatal(err)
					}
					nll, err := v.Model.NLL(b)
					if err != nil {
						t.Fatal(err)
					}
					logits, err := v.Model.Logits(b)
					if err != nil {
						t.Fatal(err)
					}
					vocab := v.Model.Config.Text.VocabSize
					for i, fs := range f.Samples {
						if b.Lengths[i] != fs.SeqLen {
							t.Errorf("%s: spliced length %d, want %d", fs.ID, b.Lengths[i], fs.SeqLen)
						}
						if nll[i].Tokens != fs.Tokens {
							t.Errorf("%s: %d supervised tokens, want %d", fs.ID, nll[i].Tokens, fs.Tokens)
						}
						// Every sample, the .jpg one included: data.LoadImage decodes JPEGs bit-exactly as
						// PIL on libjpeg-turbo (package data/jpeg), so no decoder allowance is needed.
						const tol = 1e-5
						if fs.Tokens > 0 && math.Abs(nll[i].NLL-fs.NLL) > tol*math.Abs(fs.NLL) {
							t.Errorf("%s: nll %.9f, want %.9f (rel %.2e)", fs.ID, nll[i].NLL, fs.NLL, math.Abs(nll[i].NLL-fs.NLL)/fs.NLL)
						}
						if fs.Logits == nil {
							continue
						}
						maxAbs, maxDiff := 0.0, 0.0
						for p, row := range fs.Logits {
							for k, want := range row {
								got := float64(logits[(i*b.L+p)*vocab+k])
								maxAbs = math.Max(maxAbs, math.Abs(want))
								maxDiff = math.Max(maxDiff, math.Abs(got-want))
							}
						}
						if maxDiff > 1e-4*maxAbs {
							t.Errorf("%s: logits differ by %.3g (max |logit| %.3g, rel %.2e > 1e-4)", fs.ID, maxDiff, maxAbs, maxDiff/maxAbs)
						} else {
							t.Logf("%s: logits rel diff %.2e", fs.ID, maxDiff/maxAbs)
						}
					}
					// Greedy generation with the KV cache, one case at a time and batched.
					var genIn []tinyllava.Input
					for _, g := range f.Generation {
						img := ""
						if g.Image != "" {
							img = filepath.Join(images, g.Image)
						}
						in, err := v.PromptInput("gen", img, stripImage(g.Question))
						if err != nil {
							t.Fatal(err)
						}
						if !slices.Equal(in.IDs, g.InputIDs) {
							t.Errorf("generation prompt ids\n got %v\nwant %v", in.IDs, g.InputIDs)
						}
						genIn = append(genIn, in)
						_, ids, err := v.GenerateText([]tinyllava.Input{in}, tinyllava.GenerateOptions{MaxNewTokens: g.MaxNewTokens})
						if err != nil {
							t.Fatal(err)
						}
						if want := trimStop(g.OutputIDs, g.Stop); !slices.Equal(ids[0], want) {
							t.Errorf("greedy ids\n got %v\nwant %v", ids[0], want)
						}
					}
					// Batched: the prompts differ in length, so rows are left-padded under a mask.
					if len(genIn) > 1 {
						_, ids, err := v.GenerateText(genIn, tinyllava.GenerateOptions{MaxNewTokens: f.Generation[0].MaxNewTokens})
						if err != nil {
							t.Fatal(err)
						}
						for i, g := range f.Generation {
							if g.MaxNewTokens != f.Generation[0].MaxNewTokens {
								t.Fatalf("generation cases differ in max_new_tokens")
							}
							if want := trimStop(g.OutputIDs, g.Stop); !slices.Equal(ids[i], want) {
								t.Errorf("batched greedy ids, row %d\n got %v\nwant %v", i, ids[i], want)
							}
						}
					}
				})
			}
		})
	}
}

// The fixture's question carries the "<image>\n" prefix; PromptInput adds it itself.
func stripImage(q string) string {
	const p = "<image>\n"
	if len(q) >= len(p) && q[:len(p)] == p {
		return q[len(p):]
	}
	return q
}

// trimStop drops the final eos id: switchkd returns the text tokens without the stop token.
func trimStop(ids []int, stop string) []int {
	if stop == "eos" && len(ids) > 0 {
		return ids[:len(ids)-1]
	}
	return ids
}
