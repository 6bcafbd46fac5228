package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyModel copies a fixture checkpoint into a temp dir so a test can damage it.
func copyModel(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", "models", name)
	dst := filepath.Join(t.TempDir(), name)
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ = json.Marshal(m)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Bad checkpoints give exit code 1 and one clear line naming the file or tensor, never a panic.
func TestBadModelInputs(t *testing.T) {
	cases := []struct {
		name   string
		model  string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{"missing config", "tiny-a", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "config.json")) }, []string{"config.json"}},
		{"malformed config", "tiny-a", func(t *testing.T, d string) {
			os.WriteFile(filepath.Join(d, "config.json"), []byte(`{"model_type": "tinyllava",`), 0o644)
		}, []string{"config.json", "malformed"}},
		{"bad connector", "tiny-a", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "config.json"), func(m map[string]any) { m["connector_type"] = "qformer" })
		}, []string{"connector_type", "qformer"}},
		{"heads not dividing", "tiny-a", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "config.json"), func(m map[string]any) {
				m["text_config"].(map[string]any)["num_attention_heads"] = 7
			})
		}, []string{"num_attention_heads"}},
		{"wrong shape", "tiny-a", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "config.json"), func(m map[string]any) {
				m["text_config"].(map[string]any)["intermediate_size"] = 99
			})
		}, []string{"mlp.", "shape", "99]"}},
		{"missing tensors", "tiny-a", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "config.json"), func(m map[string]any) {
				m["text_config"].(map[string]any)["num_hidden_layers"] = 4
			})
		}, []string{"missing", "language_model.model.layers.2.mlp.down_proj.weight", "language_model.model.layers.3."}},
		{"missing weights file", "tiny-a", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "model.safetensors")) }, []string{"safetensors"}},
		{"truncated weights", "tiny-a", func(t *testing.T, d string) {
			p := filepath.Join(d, "model.safetensors")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, []string{"model.safetensors"}},
		{"garbage header", "tiny-a", func(t *testing.T, d string) {
			p := filepath.Join(d, "model.safetensors")
			b, _ := os.ReadFile(p)
			copy(b[8:], []byte("not json at all"))
			os.WriteFile(p, b, 0o644)
		}, []string{"model.safetensors"}},
		{"missing shard", "tiny-c", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "model-00002-of-00002.safetensors")) }, []string{"model-00002-of-00002.safetensors"}},
		{"missing tokenizer", "tiny-a", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "tokenizer.json")) }, []string{"tokenizer.json"}},
		{"corrupt image", "tiny-a", func(t *testing.T, d string) {
			os.WriteFile(filepath.Join(d, "images", "rgba.png"), []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
		}, []string{"rgba.png", "s0_image_short"}},
		{"missing image", "tiny-a", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "images", "rgba.png")) }, []string{"rgba.png"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyModel(t, c.model)
			c.damage(t, dir)
			var out, errb bytes.Buffer
			code := run([]string{"nll", "--model", dir, "--data", filepath.Join(dir, "data.json"), "--images", filepath.Join(dir, "images")}, &out, &errb)
			msg := errb.String()
			if code != 1 {
				t.Fatalf("exit code %d, want 1; stderr: %s", code, msg)
			}
			if strings.Contains(msg, "internal error") || strings.Contains(msg, "panic") {
				t.Fatalf("panicked: %s", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", strings.TrimSpace(msg), w)
				}
			}
			if out.Len() != 0 {
				t.Errorf("partial output on error: %q", out.String())
			}
		})
	}
}

// nll and generate on a good checkpoint: one JSON line per sample, and {"text","ids"}.
func TestNLLAndGenerateCommands(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "models", "tiny-b")
	var out, errb bytes.Buffer
	if code := run([]string{"nll", "--model", dir, "--data", filepath.Join(dir, "data.json"), "--images", filepath.Join(dir, "images")}, &out, &errb); code != 0 {
		t.Fatalf("nll exit %d: %s", code, errb.String())
	}
	var fx struct {
		Samples []struct {
			ID     string  `json:"id"`
			NLL    float64 `json:"nll"`
			Tokens int     `json:"tokens"`
		} `json:"samples"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "fixture.json"))
	json.Unmarshal(b, &fx)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(fx.Samples) {
		t.Fatalf("%d output lines, want %d", len(lines), len(fx.Samples))
	}
	for i, l := range lines {
		var r struct {
			ID     string  `json:"id"`
			NLL    float64 `json:"nll"`
			Tokens int     `json:"tokens"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		want := fx.Samples[i]
		if r.ID != want.ID || r.Tokens != want.Tokens || (want.Tokens > 0 && abs(r.NLL-want.NLL) > 1e-3*want.NLL) {
			t.Errorf("line %d: %+v, want %+v", i, r, want)
		}
	}
	out.Reset()
	if code := run([]string{"generate", "--model", dir, "--image", filepath.Join(dir, "images", "rgba.png"), "--prompt", "What is shown?", "--max-new-tokens", "5", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("generate exit %d: %s", code, errb.String())
	}
	var g struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids"`
	}
	if err := json.Unmarshal(out.Bytes(), &g); err != nil || len(g.IDs) == 0 || len(g.IDs) > 5 {
		t.Fatalf("generate output %q (%v)", out.String(), err)
	}
	// Usage errors: exit 2.
	if code := run([]string{"generate", "--prompt", "x"}, &out, &errb); code != 2 {
		t.Errorf("missing --model: exit %d, want 2", code)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
