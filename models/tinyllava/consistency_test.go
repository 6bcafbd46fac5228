package tinyllava

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/switchkd/switchkd/engine"
)

// testShape is the shape of a random test model: LLM widths, vision widths, image and patch size.
type testShape struct {
	vocab, hidden, inter, layers, heads, kvHeads   int
	vHidden, vInter, vLayers, vHeads, image, patch int
	tied                                           bool
}

// testConfig builds the config.json of a random TinyLLaVA-Qwen2-SigLIP model of shape s.
func testConfig(t testing.TB, s testShape) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(fmt.Sprintf(`{"model_type":"tinyllava","connector_type":"mlp2x_gelu",
	 "tokenizer_model_max_length":2048,
	 "text_config":{"model_type":"qwen2","vocab_size":%d,"hidden_size":%d,"intermediate_size":%d,
	   "num_hidden_layers":%d,"num_attention_heads":%d,"num_key_value_heads":%d,"rope_theta":10000,
	   "rms_norm_eps":1e-6,"tie_word_embeddings":%v,"max_position_embeddings":2048},
	 "vision_config":{"model_type":"siglip_vision_model","hidden_size":%d,"intermediate_size":%d,
	   "num_hidden_layers":%d,"num_attention_heads":%d,"image_size":%d,"patch_size":%d,"layer_norm_eps":1e-6}}`,
		s.vocab, s.hidden, s.inter, s.layers, s.heads, s.kvHeads, s.tied,
		s.vHidden, s.vInter, s.vLayers, s.vHeads, s.image, s.patch)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tinyConfig is a small random model used for self-consistency tests (the PyTorch parity
// tests live in vlm/parity_test.go).
func tinyConfig(t *testing.T) *Config {
	return testConfig(t, testShape{vocab: 97, hidden: 32, inter: 48, layers: 2, heads: 4, kvHeads: 2,
		vHidden: 16, vInter: 24, vLayers: 2, vHeads: 2, image: 16, patch: 4, tied: true})
}

func tinyModel(t *testing.T) *Model {
	c := tinyConfig(t)
	m, err := New(c, RandomParams(c, 0.2, 1), engine.MustBackend(""))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func randomImage(c *Config, rng *rand.Rand) []float32 {
	v := make([]float32, c.Vision.NumChannels*c.Vision.ImageSize*c.Vision.ImageSize)
	for i := range v {
		v[i] = float32(rng.Float64()*2 - 1)
	}
	return v
}

// bothPaths runs fn on the model with each inference path: one graph, and the host kernels
// between graphs per layer part (HostKernels, whatever this build's default).
func bothPaths(t *testing.T, m *Model, fn func(t *testing.T)) {
	for _, host := range []bool{false, true} {
		m.HostKernels = host
		t.Run(map[bool]string{false: "graph", true: "hostkernels"}[host], fn)
	}
}

func argmaxRow(v []float32) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

// The KV-cache decoder must produce exactly the tokens a full recomputation of the growing
// sequence picks, for every row of a left-padded batch.
func TestGenerateMatchesRecompute(t *testing.T) {
	m := tinyModel(t)
	c := m.Config
	rng := rand.New(rand.NewPCG(3, 4))
	inputs := []Input{
		{ID: "a", IDs: []int{5, ImageTokenIndex, 7, 8, 9}, Images: [][]float32{randomImage(c, rng)}},
		{ID: "b", IDs: []int{ImageTokenIndex, 11}, Images: [][]float32{randomImage(c, rng)}},
		{ID: "c", IDs: []int{ImageTokenIndex, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, Images: [][]float32{randomImage(c, rng)}},
	}
	const steps = 6
	bothPaths(t, m, func(t *testing.T) { generateMatchesRecompute(t, m, inputs, steps) })
}

func generateMatchesRecompute(t *testing.T, m *Model, inputs []Input, steps int) {
	c := m.Config
	got, err := m.Generate(inputs, GenerateOptions{MaxNewTokens: steps})
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range inputs {
		ids := append([]int(nil), in.IDs...)
		var want []int
		for s := 0; s < steps; s++ {
			b, err := c.BuildBatch([]Input{{ID: in.ID, IDs: ids, Images: in.Images}}, 1)
			if err != nil {
				t.Fatal(err)
			}
			logits, err := m.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			v := c.Text.VocabSize
			last := b.Lengths[0] - 1
			tok := argmaxRow(logits[last*v : (last+1)*v])
			want = append(want, tok)
			ids = append(ids, tok)
		}
		if len(got[i]) != steps {
			t.Fatalf("row %d: got %d tokens, want %d", i, len(got[i]), steps)
		}
		for s := range want {
			if got[i][s] != want[s] {
				t.Fatalf("row %d: cached generation %v, recomputed %v", i, got[i], want)
			}
		}
	}
}

// NLL (logits only at supervised positions, float64 accumulation) must equal the
// cross-entropy computed on the host from the full logits.
func TestNLLMatchesLogits(t *testing.T) {
	m := tinyModel(t)
	c := m.Config
	rng := rand.New(rand.NewPCG(5, 6))
	inputs := []Input{
		{ID: "a", IDs: []int{5, ImageTokenIndex, 7, 8, 9, 10}, Labels: []int{-100, -100, -100, 8, 9, 10}, Images: [][]float32{randomImage(c, rng)}},
		{ID: "b", IDs: []int{4, 12, 13, 14}, Labels: []int{-100, 12, -100, 14}},
	}
	b, err := c.BuildBatch(inputs, 8)
	if err != nil {
		t.Fatal(err)
	}
	bothPaths(t, m, func(t *testing.T) { nllMatchesLogits(t, m, b) })
}

func nllMatchesLogits(t *testing.T, m *Model, b *Batch) {
	c := m.Config
	got, err := m.NLL(b)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := m.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	v := c.Text.VocabSize
	for r := 0; r < b.B; r++ {
		sum, n := 0.0, 0
		for p := 0; p < b.L; p++ {
			tg := b.Targets[r*b.L+p]
			if tg < 0 {
				continue
			}
			row := logits[(r*b.L+p)*v : (r*b.L+p+1)*v]
			mx := math.Inf(-1)
			for _, x := range row {
				mx = math.Max(mx, float64(x))
			}
			s := 0.0
			for _, x := range row {
				s += math.Exp(float64(x) - mx)
			}
			sum += math.Log(s) + mx - float64(row[tg])
			n++
		}
		if got[r].Tokens != n || math.Abs(got[r].NLL-sum/float64(n)) > 1e-5*math.Abs(sum/float64(n)) {
			t.Errorf("row %d: NLL %v over %d tokens, host CE %v over %d", r, got[r].NLL, got[r].Tokens, sum/float64(n), n)
		}
	}
	if want := []int{3, 2}; got[0].Tokens != want[0] || got[1].Tokens != want[1] {
		t.Errorf("token counts %d, %d; want %v", got[0].Tokens, got[1].Tokens, want)
	}
}

// A saved model reloads with the same configuration and gives bitwise-identical logits (F32) or
// logits within BF16 rounding (BF16).
func TestSaveLoadRoundTrip(t *testing.T) {
	m := tinyModel(t)
	c := m.Config
	rng := rand.New(rand.NewPCG(7, 8))
	b, err := c.BuildBatch([]Input{{ID: "x", IDs: []int{3, ImageTokenIndex, 4, 5}, Images: [][]float32{randomImage(c, rng)}}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() + "/saved"
	if err := m.Save(dir, "F32", ""); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(dir, m.Backend)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Config.Text != c.Text || m2.Config.Vision != c.Vision || m2.Config.ConnectorType != c.ConnectorType {
		t.Fatalf("config changed on reload: %+v vs %+v", m2.Config, c)
	}
	got, err := m2.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logit %d: %v after reload, %v before", i, got[i], want[i])
		}
	}
	// Saving over an existing folder replaces it.
	if err := m.Save(dir, "BF16", ""); err != nil {
		t.Fatal(err)
	}
	m3, err := Load(dir, m.Backend)
	if err != nil {
		t.Fatal(err)
	}
	got, err = m3.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	maxAbs, maxDiff := 0.0, 0.0
	for i := range want {
		maxAbs = math.Max(maxAbs, math.Abs(float64(want[i])))
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
	}
	if maxDiff == 0 || maxDiff > 0.05*maxAbs {
		t.Fatalf("BF16 reload: max logit difference %v (max |logit| %v); want small but non-zero", maxDiff, maxAbs)
	}
}

// SigLIP-so400m uses 384 px at patch 14: the stride-14 convolution covers 27x27 patches and
// ignores the last 6 rows and columns. A model with image_size 18 / patch 4 must therefore equal
// the same weights at image_size 16 on the top-left 16x16 crop.
func TestPatchEmbeddingIgnoresRemainder(t *testing.T) {
	c16 := tinyConfig(t)
	raw := []byte(`{"model_type":"tinyllava","connector_type":"mlp2x_gelu","tokenizer_model_max_length":128,
	 "text_config":{"model_type":"qwen2","vocab_size":97,"hidden_size":32,"intermediate_size":48,
	   "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rope_theta":10000,
	   "rms_norm_eps":1e-6,"tie_word_embeddings":true,"max_position_embeddings":512},
	 "vision_config":{"model_type":"siglip_vision_model","hidden_size":16,"intermediate_size":24,
	   "num_hidden_layers":2,"num_attention_heads":2,"image_size":18,"patch_size":4,"layer_norm_eps":1e-6}}`)
	c18, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if c18.NumImageFeatures() != c16.NumImageFeatures() {
		t.Fatalf("18px/4 gives %d features, 16px/4 %d", c18.NumImageFeatures(), c16.NumImageFeatures())
	}
	p := RandomParams(c16, 0.2, 1)
	b := engine.MustBackend("")
	m16, err := New(c16, p, b)
	if err != nil {
		t.Fatal(err)
	}
	m18, err := New(c18, p, b)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	img18 := make([]float32, 3*18*18)
	for i := range img18 {
		img18[i] = float32(rng.Float64()*2 - 1)
	}
	img16 := make([]float32, 3*16*16)
	for ch := 0; ch < 3; ch++ {
		for y := 0; y < 16; y++ {
			for x := 0; x < 16; x++ {
				img16[(ch*16+y)*16+x] = img18[(ch*18+y)*18+x]
			}
		}
	}
	ids := []int{3, ImageTokenIndex, 4}
	b16, _ := c16.BuildBatch([]Input{{ID: "a", IDs: ids, Images: [][]float32{img16}}}, 1)
	b18, _ := c18.BuildBatch([]Input{{ID: "a", IDs: ids, Images: [][]float32{img18}}}, 1)
	l16, err := m16.Logits(b16)
	if err != nil {
		t.Fatal(err)
	}
	l18, err := m18.Logits(b18)
	if err != nil {
		t.Fatal(err)
	}
	for i := range l16 {
		if l16[i] != l18[i] {
			t.Fatalf("logit %d: %v (18 px) vs %v (16 px crop)", i, l18[i], l16[i])
		}
	}
}

// The host-kernel path must give the one-graph path's logits (float32 both; the kernels' exp is
// within 2 ulp) on shapes where the vector kernels and the row blocks are used: rows longer than
// a vector, two images, more than 128 positions.
func TestHostKernelsMatchGraph(t *testing.T) {
	c := testConfig(t, testShape{vocab: 300, hidden: 64, inter: 96, layers: 2, heads: 4, kvHeads: 2,
		vHidden: 32, vInter: 80, vLayers: 3, vHeads: 2, image: 64, patch: 8})
	m, err := New(c, RandomParams(c, 0.2, 7), engine.MustBackend(""))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 9))
	ids := []int{ImageTokenIndex, 5}
	for i := 0; i < 40; i++ {
		ids = append(ids, 10+i)
	}
	ids = append(ids, ImageTokenIndex, 7, 8, 9)
	inputs := []Input{
		{ID: "two images", IDs: ids, Images: [][]float32{randomImage(c, rng), randomImage(c, rng)}},
		{ID: "text", IDs: []int{4, 12, 13, 14, 15}},
	}
	b, err := c.BuildBatch(inputs, 16)
	if err != nil {
		t.Fatal(err)
	}
	if b.L < 128 {
		t.Fatalf("batch length %d: the test wants the row blocks (>= 128 positions)", b.L)
	}
	logits := map[bool][]float32{}
	for _, host := range []bool{false, true} {
		m.HostKernels = host
		if logits[host], err = m.Logits(b); err != nil {
			t.Fatal(err)
		}
	}
	maxAbs, maxDiff := 0.0, 0.0
	for i, g := range logits[false] {
		maxAbs = math.Max(maxAbs, math.Abs(float64(g)))
		maxDiff = math.Max(maxDiff, math.Abs(float64(logits[true][i]-g)))
	}
	if maxDiff > 1e-5*maxAbs {
		t.Fatalf("host-kernel logits differ from the graph's by %.3g (max |logit| %.3g)", maxDiff, maxAbs)
	}
	t.Logf("max |diff| %.3g, max |logit| %.3g", maxDiff, maxAbs)
}
