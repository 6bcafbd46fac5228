package tinyllava

import (
	"fmt"
)

// Input is one sample for the model: token ids with ImageTokenIndex where images go, optional
// labels (IgnoreIndex for unsupervised positions; nil for generation), and one preprocessed
// image [C*S*S] per ImageTokenIndex.
type Input struct {
	ID     string
	IDs    []int
	Labels []int
	Images [][]float32
}

// Batch is the host-side layout of a padded batch after splicing image features in, as the
// graphs consume it. Sequences are right-padded to L.
type Batch struct {
	B, L      int
	NumImages int
	Pixels    []float32 // [NumImages, C, S, S]
	IDs       []int32   // [B*L] token ids (0 at image and padding positions)
	ImageSel  []int32   // [B*L] row in the flattened image features [NumImages*F]
	IsImage   []bool    // [B*L]
	Positions []int32   // [B*L]
	// Targets[b*L+t] is the label of position t+1 (the token position t predicts), or
	// IgnoreIndex: the supervised positions are those with Targets >= 0.
	Targets []int32
	Lengths []int // real length of each row after splicing and truncation
}

// Splice lays one input out as TinyLLaVA's prepare_inputs_labels_for_multimodal does: each
// ImageTokenIndex is replaced by the next image's F feature slots (label IgnoreIndex), and the
// result is cut to tokenizer_model_max_length. It returns, per position, the token id (or -1-k
// for feature slot k of the sample's images, counted from 0) and the label.
func (c *Config) Splice(in Input) (slots []int, labels []int, err error) {
	f := c.NumImageFeatures()
	img := 0
	for i, id := range in.IDs {
		lab := IgnoreIndex
		if in.Labels != nil {
			lab = in.Labels[i]
		}
		if id == ImageTokenIndex {
			if img >= len(in.Images) {
				return nil, nil, fmt.Errorf("sample %q: more <image> tokens than images (%d)", in.ID, len(in.Images))
			}
			for k := 0; k < f; k++ {
				slots = append(slots, -1-(img*f+k))
				labels = append(labels, IgnoreIndex)
			}
			img++
			continue
		}
		if id < 0 || id >= c.Text.VocabSize {
			return nil, nil, fmt.Errorf("sample %q: token id %d at position %d is outside the vocabulary (%d)", in.ID, id, i, c.Text.VocabSize)
		}
		slots = append(slots, id)
		labels = append(labels, lab)
	}
	if max := c.TokenizerModelMaxLength; len(slots) > max {
		slots, labels = slots[:max], labels[:max]
	}
	return slots, labels, nil
}

// BuildBatch splices and right-pads inputs to a common length: the longest row rounded up to
// a multiple of bucket (bucket <= 1: no rounding), so graphs compile for few shapes.
func (c *Config) BuildBatch(inputs []Input, bucket int) (*Batch, error) {
	type row struct{ slots, labels []int }
	rows := make([]row, len(inputs))
	maxLen := 1
	numImages := 0
	for i, in := range inputs {
		if in.Labels != nil && len(in.Labels) != len(in.IDs) {
			return nil, fmt.Errorf("sample %q: %d labels for %d ids", in.ID, len(in.Labels), len(in.IDs))
		}
		s, l, err := c.Splice(in)
		if err != nil {
			return nil, err
		}
		rows[i] = row{s, l}
		if len(s) > maxLen {
			maxLen = len(s)
		}
		numImages += len(in.Images)
	}
	L := maxLen
	if bucket > 1 {
		L = (maxLen + bucket - 1) / bucket * bucket
	}
	b := &Batch{B: len(inputs), L: L, NumImages: numImages}
	n := b.B * L
	b.IDs, b.ImageSel, b.IsImage, b.Positions = make([]int32, n), make([]int32, n), make([]bool, n), make([]int32, n)
	b.Targets = make([]int32, n)
	for i := range b.Targets {
		b.Targets[i] = IgnoreIndex
	}
	pixSize := c.Vision.NumChannels * c.Vision.ImageSize * c.Vision.ImageSize
	f := c.NumImageFeatures()
	imgBase := 0
	for i, r := range rows {
		for t := 0; t < L; t++ {
			b.Positions[i*L+t] = int32(t)
		}
		for t, s := range r.slots {
			b.place(i*L+t, s, imgBase*f)
			if t+1 < len(r.labels) && r.labels[t+1] >= 0 {
				b.Targets[i*L+t] = int32(r.labels[t+1])
			}
		}
		b.Lengths = append(b.Lengths, len(r.slots))
		for k, im := range inputs[i].Images {
			if len(im) != pixSize {
				return nil, fmt.Errorf("sample %q: image %d has %d values, want %d (%dx%dx%d)", inputs[i].ID, k, len(im), pixSize,
					c.Vision.NumChannels, c.Vision.ImageSize, c.Vision.ImageSize)
			}
			b.Pixels = append(b.Pixels, im...)
		}
		imgBase += len(inputs[i].Images)
	}
	return b, nil
}

// place writes slot s (a token id, or -1-k for image feature slot k of its sample) at flat
// position k; imgOffset is the row of the sample's first image feature in the flattened
// image features.
func (b *Batch) place(k, s, imgOffset int) {
	if s < 0 {
		b.IsImage[k] = true
		b.ImageSel[k] = int32(imgOffset + (-1 - s))
	} else {
		b.IDs[k] = int32(s)
	}
}
