package demo

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/models/layers"
	"github.com/switchkd/switchkd/models/tinyllava"
	progressline "github.com/switchkd/switchkd/progress"
	"github.com/switchkd/switchkd/train"
	"github.com/switchkd/switchkd/world"
)

// Vision pre-training is the demo's analog of SigLIP's pre-training. In the paper teacher and
// student start from the same pre-trained SigLIP tower; a tower trained from scratch through
// the LLM's answer loss alone (the demo's first design) never learned to see within a CPU
// budget: the teacher stayed at the text-only baseline. Here the tower is first trained on a
// dense, cheap objective read straight off the world's ground truth, through a linear probe on
// the features TinyLLaVA passes to the connector (hidden_states[-2]):
//   - per patch: what the object covering most of the patch is (shape, colour, size) and which
//     character is drawn on it ("nothing" for none);
//   - per item (each object, and a standalone character): the same four answers from the
//     features of the item's patches averaged (weighted by how much of each patch it covers),
//     as the LLM's attention pools them. Shape is a property of an object's whole outline, not
//     of the piece one patch shows; this term teaches it far faster than the per-patch one.
//
// The probe is thrown away afterwards, as SigLIP's text tower is.

// PretrainRecipe is the vision pre-training phase.
type PretrainRecipe struct {
	// Scenes are drawn afresh for pre-training (world.PretrainScenes: none equal in content to
	// a train, validation or test scene), with a character in a CharProb share of them.
	Scenes      int     `json:"scenes"`
	CharProb    float64 `json:"char_prob"`
	Steps       int     `json:"steps"`
	Batch       int     `json:"batch"` // images per step
	LR          float64 `json:"lr"`
	WarmupRatio float64 `json:"warmup_ratio"`
	// Shards split each batch; their gradients are computed concurrently (one per core) and
	// averaged. The result does not depend on the number of cores.
	Shards int `json:"shards"`
	// EmptyWeight weighs, in each head's loss, the patches where it has nothing to name (most
	// patches are background): below 1, the probe's loss dwells on the objects' patches.
	EmptyWeight float64 `json:"empty_weight"`
}

func (rc PretrainRecipe) validate() error {
	if rc.EmptyWeight <= 0 || rc.Shards < 1 || rc.Shards > rc.Batch || rc.Scenes < 1 || rc.Steps < 1 || rc.Batch < 1 || rc.LR <= 0 || rc.CharProb < 0 || rc.CharProb > 1 {
		return fmt.Errorf("demo: bad vision pre-training recipe %+v", rc)
	}
	return nil
}

// ProbeHead is one of the pre-training probe's per-patch classifiers; class 0 is "nothing".
type ProbeHead struct {
	Name    string
	Classes []string // classes 1..len
}

// ProbeHeads are the probe's classifiers: what the grid cell under a patch holds.
func ProbeHeads() []ProbeHead {
	return []ProbeHead{{"shape", world.Shapes}, {"colour", world.Colours}, {"size", world.Sizes}, {"char", world.Chars()}}
}

// Names of the probe's tensors (not part of any saved model).
const (
	probeWeight = "probe.weight"
	probeBias   = "probe.bias"
)

// PatchLabels returns the probe's targets for scene s cut into patch-px patches: per patch
// (row-major) and head (ProbeHeads order), the class index of the object whose box covers the
// most of the patch (shape, colour, size) and of the character whose box does (char), 0 for
// none.
func PatchLabels(s *world.Scene, patch int) []int32 {
	heads := ProbeHeads()
	index := func(h int, v string) int32 { return int32(slices.Index(heads[h].Classes, v) + 1) }
	n := s.Size / patch
	out := make([]int32, n*n*len(heads))
	for r := 0; r < n; r++ {
		for c := 0; c < n; c++ {
			lb := out[(r*n+c)*len(heads) : (r*n+c+1)*len(heads)]
			best := 0
			for _, o := range s.Objects {
				if a := overlap(o.BBox, c*patch, r*patch, patch); a > best {
					best = a
					lb[0], lb[1], lb[2] = index(0, o.Shape), index(1, o.Colour), index(2, o.Size)
				}
			}
			if t := s.Text; t != nil && overlap(t.BBox, c*patch, r*patch, patch) > 0 {
				lb[3] = index(3, t.Char)
			}
		}
	}
	return out
}

// maxItems is the most items a scene holds: world.Config allows 4 objects and one character.
const maxItems = 5

// ProbeItem is one object of a scene, or its standalone character, as the probe's item term
// sees it: pooling weights over the patches (row-major, summing to 1: the share of the item's
// box each patch covers) and its class per head (ProbeHeads order; 0 for nothing: a standalone
// character has no shape, colour or size, an object without a character has no char).
type ProbeItem struct {
	Pool   []float32
	Labels []int32
}

// ProbeItems lists s's objects (in scene order), then its standalone character.
func ProbeItems(s *world.Scene, patch int) []ProbeItem {
	heads := ProbeHeads()
	index := func(h int, v string) int32 { return int32(slices.Index(heads[h].Classes, v) + 1) }
	n := s.Size / patch
	pool := func(b [4]int) []float32 {
		w := make([]float32, n*n)
		sum := float32(0)
		for r := 0; r < n; r++ {
			for c := 0; c < n; c++ {
				if a := overlap(b, c*patch, r*patch, patch); a > 0 {
					w[r*n+c] = float32(a)
					sum += float32(a)
				}
			}
		}
		for i := range w {
			w[i] /= max(sum, 1)
		}
		return w
	}
	var out []ProbeItem
	for i, o := range s.Objects {
		lb := []int32{index(0, o.Shape), index(1, o.Colour), index(2, o.Size), 0}
		if t := s.Text; t != nil && t.Host == i {
			lb[3] = index(3, t.Char)
		}
		out = append(out, ProbeItem{Pool: pool(o.BBox), Labels: lb})
	}
	if t := s.Text; t != nil && t.Host < 0 {
		out = append(out, ProbeItem{Pool: pool(t.BBox), Labels: []int32{0, 0, 0, index(3, t.Char)}})
	}
	return out
}

// overlap is the area a box {x0, y0, x1, y1} shares with the patch-px patch at (x0, y0).
func overlap(b [4]int, x0, y0, patch int) int {
	w := min(b[2], x0+patch) - max(b[0], x0)
	h := min(b[3], y0+patch) - max(b[1], y0)
	return max(0, w) * max(0, h)
}

// PretrainResult reports a pre-training run.
type PretrainResult struct {
	Scenes    int     `json:"scenes"`
	Steps     int     `json:"steps"`
	FirstLoss float64 `json:"first_loss"` // summed per-patch cross-entropy of the four heads
	LastLoss  float64 `json:"last_loss"`  // mean over the last tenth of the steps
	// HeldOut is the probe's accuracy (percent) per head on the items (objects; characters for
	// char) of held-out scenes; Chance is the accuracy of always naming each head's most
	// frequent class there.
	HeldOut map[string]float64 `json:"held_out_accuracy"`
	Chance  map[string]float64 `json:"held_out_chance"`
	Seconds float64            `json:"seconds"`
}

// pretrainer holds the compiled pre-training graphs of one model.
type pretrainer struct {
	m      *tinyllava.Model
	pp     data.PreprocessConfig
	names  []string // trained tensors: the vision tower's used ones, then the probe's
	params map[string]*tensors.Tensor
	opt    train.AdamW
	heads  []ProbeHead
	// emptyWeight weighs the patches where a head has nothing to name.
	emptyWeight float64
	grad        *Exec // one shard's gradients
	update      *Exec // AdamW over the shards' mean gradient
	eval        *Exec
}

func newPretrainer(m *tinyllava.Model, pp data.PreprocessConfig, seed uint64) *pretrainer {
	p := &pretrainer{m: m, pp: pp, opt: train.DefaultAdamW(), heads: ProbeHeads(), params: map[string]*tensors.Tensor{}}
	for _, n := range m.Params.Used {
		if strings.HasPrefix(n, tinyllava.VisionPrefix) {
			p.names = append(p.names, n)
			p.params[n] = m.Params.T[n]
		}
	}
	k := 0
	for _, h := range p.heads {
		k += 1 + len(h.Classes)
	}
	d := m.Config.Vision.HiddenSize
	// PyTorch's nn.Linear initialisation.
	rng := rand.New(rand.NewPCG(seed, 0x9e0be))
	bound := 1 / math.Sqrt(float64(d))
	w := make([]float32, k*d)
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * bound)
	}
	p.params[probeWeight] = tensors.FromFlatDataAndDimensions(w, k, d)
	p.params[probeBias] = tensors.FromFlatDataAndDimensions(make([]float32, k), k)
	p.names = append(p.names, probeWeight, probeBias)
	return p
}

// toDevice moves the probe's fresh tensors to the backend: the shards' concurrent executions
// then only read them.
func (p *pretrainer) toDevice() error {
	for _, n := range []string{probeWeight, probeBias} {
		if err := p.params[n].ToDevice(p.m.Backend, 0); err != nil {
			return err
		}
	}
	return nil
}

// features runs the tower: [B*patches, hidden].
func (p *pretrainer) features(w layers.Weights, pixels *Node) *Node {
	f := p.m.Config.VisionFeatures(w, pixels)
	d := f.Shape().Dimensions
	return Reshape(f, d[0]*d[1], d[2])
}

// probe maps features [N, hidden] to the heads' logits [N, sum of the heads' classes].
func (p *pretrainer) probe(w layers.Weights, x *Node) *Node {
	return layers.Linear(x, w(probeWeight), w(probeBias))
}

// batchNodes are a batch's inputs inside a graph (see pretrainBatch).
type batchNodes struct{ pixels, patchLabels, pool, itemLabels, itemMask *Node }

// loss is the probe's loss on a batch: per head, the mean per-patch cross-entropy (patches
// where the head has nothing to name weigh emptyWeight) plus the mean per-item cross-entropy.
func (p *pretrainer) loss(w layers.Weights, b batchNodes) *Node {
	g := b.pixels.Graph()
	f := p.features(w, b.pixels)
	loss := ScalarZero(g, dtypes.Float32)
	p.perHead(p.probe(w, f), b.patchLabels, func(_ int, lg, tg *Node) {
		wt := Where(Equal(tg, ZerosLike(tg)), Scalar(g, dtypes.Float32, p.emptyWeight), ScalarOne(g, dtypes.Float32))
		loss = Add(loss, Div(ReduceAllSum(Mul(tinyllava.CrossEntropy(lg, tg), wt)), ReduceAllSum(wt)))
	})
	p.perHead(p.probe(w, MatMul(b.pool, f)), b.itemLabels, func(_ int, lg, tg *Node) {
		ce := Mul(tinyllava.CrossEntropy(lg, tg), b.itemMask)
		loss = Add(loss, Div(ReduceAllSum(ce), ReduceAllSum(b.itemMask)))
	})
	return loss
}

// perHead calls fn with each head's logits [N, classes] and targets [N].
func (p *pretrainer) perHead(logits, labels *Node, fn func(h int, lg, tg *Node)) {
	off := 0
	for h, hd := range p.heads {
		k := 1 + len(hd.Classes)
		fn(h, SliceAxis(logits, 1, AxisRange(off, off+k)), Squeeze(SliceAxis(labels, 1, AxisRange(h, h+1)), 1))
		off += k
	}
}

func (p *pretrainer) compile() error {
	b := p.m.Backend
	n := len(p.names)
	var err error
	// Gradient of one shard. Inputs: params, the shard's batch (5 tensors). Outputs: the
	// gradients, the loss.
	p.grad, err = NewExec(b, func(in []*Node) []*Node {
		params, bt := in[:n], in[n:]
		loss := p.loss(tinyllava.Weights(p.names, params), batchNodes{bt[0], bt[1], bt[2], bt[3], bt[4]})
		return append(Gradient(loss, params...), loss)
	})
	if err != nil {
		return err
	}
	// AdamW on the mean of the shards' gradients. Inputs: params, first moments, second
	// moments, each shard's gradients, lr, step. Outputs: new params and moments.
	p.update, err = NewExec(b, func(in []*Node) []*Node {
		params, m, v := in[:n], in[n:2*n], in[2*n:3*n]
		shards := (len(in) - 3*n - 2) / n
		grads := slices.Clone(in[3*n : 4*n])
		for k := 1; k < shards; k++ {
			for i := range grads {
				grads[i] = Add(grads[i], in[3*n+k*n+i])
			}
		}
		for i := range grads {
			grads[i] = MulScalar(grads[i], 1/float64(shards))
		}
		lr, step := in[len(in)-2], in[len(in)-1]
		np, nm, nv, _ := p.opt.Update(p.names, params, grads, m, v, lr, step)
		return append(append(np, nm...), nv...)
	})
	if err != nil {
		return err
	}
	// Inputs: params, pixels, pool. Output: the per-item predictions [items, heads].
	p.eval, err = NewExec(b, func(in []*Node) []*Node {
		w := tinyllava.Weights(p.names, in[:n])
		lg := p.probe(w, MatMul(in[n+1], p.features(w, in[n])))
		var preds []*Node
		off := 0
		for _, hd := range p.heads {
			k := 1 + len(hd.Classes)
			preds = append(preds, ArgMax(SliceAxis(lg, 1, AxisRange(off, off+k)), -1, dtypes.Int32))
			off += k
		}
		return []*Node{Stack(preds, 1)}
	})
	return err
}

// pretrainBatch is a batch's host tensors: pixels [B, C, S, S], patch labels [B*patches,
// heads], item pooling weights [B*maxItems, B*patches], item labels [B*maxItems, heads] and
// the item mask [B*maxItems] (0 for empty item slots).
type pretrainBatch struct {
	pixels, patchLabels, pool, itemLabels, itemMask *tensors.Tensor
}

func (b *pretrainBatch) args() []any {
	return []any{b.pixels, b.patchLabels, b.pool, b.itemLabels, b.itemMask}
}

// batch renders and preprocesses scenes and lays out their labels.
func (p *pretrainer) batch(scenes []*world.Scene) (*pretrainBatch, error) {
	s, nh, patch := p.pp.Size, len(p.heads), p.m.Config.Vision.PatchSize
	f := p.m.Config.Vision.NumPatches()
	nb, ni := len(scenes), len(scenes)*maxItems
	px := make([]float32, 0, nb*3*s*s)
	var lb []int32
	pool := make([]float32, ni*nb*f)
	il := make([]int32, ni*nh)
	mask := make([]float32, ni)
	for b, sc := range scenes {
		x, err := data.Preprocess(world.RenderScene(sc), p.pp)
		if err != nil {
			return nil, fmt.Errorf("demo: pre-training scene %s: %w", sc.ID, err)
		}
		px = append(px, x...)
		lb = append(lb, PatchLabels(sc, patch)...)
		items := ProbeItems(sc, patch)
		if len(items) > maxItems {
			return nil, fmt.Errorf("demo: scene %s has %d items, the probe takes %d", sc.ID, len(items), maxItems)
		}
		for i, it := range items {
			row := b*maxItems + i
			copy(pool[row*nb*f+b*f:], it.Pool)
			copy(il[row*nh:], it.Labels)
			mask[row] = 1
		}
	}
	return &pretrainBatch{
		pixels:      tensors.FromFlatDataAndDimensions(px, nb, 3, s, s),
		patchLabels: tensors.FromFlatDataAndDimensions(lb, nb*f, nh),
		pool:        tensors.FromFlatDataAndDimensions(pool, ni, nb*f),
		itemLabels:  tensors.FromFlatDataAndDimensions(il, ni, nh),
		itemMask:    tensors.FromFlatDataAndDimensions(mask, ni),
	}, nil
}

// PretrainVision trains m's vision tower in place (with a throw-away linear probe, see above)
// on scenes and measures the probe on heldOut scenes. The images are rendered from the scenes
// and preprocessed with pp, exactly as the PNG files the models read elsewhere.
func PretrainVision(m *tinyllava.Model, pp data.PreprocessConfig, scenes, heldOut []*world.Scene, rc PretrainRecipe, seed uint64, progress io.Writer) (*PretrainResult, error) {
	if err := rc.validate(); err != nil {
		return nil, err
	}
	if len(scenes) == 0 {
		return nil, fmt.Errorf("demo: no pre-training scenes")
	}
	if pp.Size != m.Config.Vision.ImageSize {
		return nil, fmt.Errorf("demo: preprocessing gives %d px images, the vision tower takes %d", pp.Size, m.Config.Vision.ImageSize)
	}
	began := time.Now()
	p := newPretrainer(m, pp, seed)
	p.emptyWeight = rc.EmptyWeight
	if err := p.toDevice(); err != nil {
		return nil, err
	}
	if err := p.compile(); err != nil {
		return nil, err
	}
	n := len(p.names)
	mom, vel := make([]*tensors.Tensor, n), make([]*tensors.Tensor, n)
	for i, name := range p.names {
		mom[i], vel[i] = tensors.FromShape(p.params[name].Shape()), tensors.FromShape(p.params[name].Shape())
	}
	sched := train.Schedule{PeakLR: rc.LR, Total: rc.Steps, WarmupRatio: rc.WarmupRatio}
	res := &PretrainResult{Scenes: len(scenes), Steps: rc.Steps}
	var order []int
	epoch, next := 0, 0
	var tail []float64
	line := progressline.New(progress)
	for step := 0; step < rc.Steps; step++ {
		var bs []*world.Scene
		for len(bs) < rc.Batch {
			if order == nil || next == len(order) {
				order, next = train.Shuffle(len(scenes), seed, epoch), 0
				epoch++
			}
			bs = append(bs, scenes[order[next]])
			next++
		}
		loss, err := p.trainStep(bs, rc.Shards, mom, vel, sched.LR(step), step+1)
		if err != nil {
			return nil, fmt.Errorf("demo: vision pre-training step %d: %w", step+1, err)
		}
		if step == 0 {
			res.FirstLoss = loss
		}
		if step >= rc.Steps-max(1, rc.Steps/10) {
			tail = append(tail, loss)
		}
		line.Set("  vision pre-training step %d/%d | loss %.4f", step+1, rc.Steps, loss)
	}
	line.Done()
	for _, x := range tail {
		res.LastLoss += x / float64(len(tail))
	}
	for _, name := range p.names {
		if strings.HasPrefix(name, tinyllava.VisionPrefix) {
			m.Params.T[name] = p.params[name]
		}
	}
	var err error
	if res.HeldOut, res.Chance, err = p.accuracy(heldOut, rc.Batch); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(began).Seconds()
	return res, nil
}

// trainStep splits a batch into shards, computes their gradients concurrently (one shard per
// core, up to GOMAXPROCS) and applies AdamW on their mean, updating p.params and the moments in
// place. It returns the mean of the shards' losses.
func (p *pretrainer) trainStep(scenes []*world.Scene, shards int, mom, vel []*tensors.Tensor, lr float64, step int) (float64, error) {
	n := len(p.names)
	params := make([]any, n)
	for i, name := range p.names {
		params[i] = p.params[name]
	}
	parts := train.Chunks(len(scenes), shards)
	grads := make([][]*tensors.Tensor, len(parts))
	losses := make([]float64, len(parts))
	err := train.Parallel(len(parts), runtime.GOMAXPROCS(0), func(k int) error {
		bt, err := p.batch(scenes[parts[k][0]:parts[k][1]])
		if err != nil {
			return err
		}
		out, err := p.grad.Exec(append(slices.Clone(params), bt.args()...)...)
		if err != nil {
			return err
		}
		grads[k], losses[k] = out[:n], float64(tensors.ToScalar[float32](out[n]))
		return nil
	})
	if err != nil {
		return 0, err
	}
	args := slices.Clone(params)
	for _, x := range slices.Concat(mom, vel) {
		args = append(args, x)
	}
	for _, g := range grads {
		for _, x := range g {
			args = append(args, x)
		}
	}
	out, err := p.update.Exec(append(args, tensors.FromScalar(float32(lr)), tensors.FromScalar(float32(step)))...)
	if err != nil {
		return 0, err
	}
	for i, name := range p.names {
		p.params[name] = out[i]
	}
	copy(mom, out[n:2*n])
	copy(vel, out[2*n:3*n])
	loss := 0.0
	for _, l := range losses {
		loss += l / float64(len(losses))
	}
	return loss, nil
}

// accuracy is the probe's per-head accuracy on scenes over the items (objects and standalone
// characters) where the head has something to name, and the accuracy of always naming the most
// frequent class there.
func (p *pretrainer) accuracy(scenes []*world.Scene, batch int) (acc, chance map[string]float64, err error) {
	acc, chance = map[string]float64{}, map[string]float64{}
	nh := len(p.heads)
	right, total := make([]int, nh), make([]int, nh)
	freq := make([]map[int32]int, nh)
	for h := range freq {
		freq[h] = map[int32]int{}
	}
	for i := 0; i < len(scenes); i += batch {
		bt, err := p.batch(scenes[i:min(len(scenes), i+batch)])
		if err != nil {
			return nil, nil, err
		}
		args := make([]any, 0, len(p.names)+2)
		for _, name := range p.names {
			args = append(args, p.params[name])
		}
		out, err := p.eval.Exec(append(args, bt.pixels, bt.pool)...)
		if err != nil {
			return nil, nil, err
		}
		pred, want := tensors.MustCopyFlatData[int32](out[0]), tensors.MustCopyFlatData[int32](bt.itemLabels)
		mask := tensors.MustCopyFlatData[float32](bt.itemMask)
		for j, w := range want {
			h := j % nh
			if w == 0 || mask[j/nh] == 0 {
				continue
			}
			if pred[j] == w {
				right[h]++
			}
			freq[h][w]++
			total[h]++
		}
	}
	for h, hd := range p.heads {
		if total[h] == 0 {
			continue
		}
		best := 0
		for _, c := range freq[h] {
			best = max(best, c)
		}
		acc[hd.Name] = 100 * float64(right[h]) / float64(total[h])
		chance[hd.Name] = 100 * float64(best) / float64(total[h])
	}
	return acc, chance, nil
}
