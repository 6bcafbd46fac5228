package train

import (
	"errors"
	"fmt"
	"io"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/vlm"
)

// LLaVAFeed streams LLaVA samples in a seeded per-epoch order, decoding images on worker
// goroutines ahead of the training step. Student and teacher share the tokenizer; when their
// image preprocessing differs the teacher's pixels are prepared separately.
type LLaVAFeed struct {
	Samples          []data.Sample
	Images           string
	Student, Teacher *vlm.VLM // Teacher may be nil
	Seed             uint64
	Workers          int

	pos    FeedPosition
	loader *data.Loader
}

func (f *LLaVAFeed) Position() FeedPosition { return f.pos }

func (f *LLaVAFeed) Seek(p FeedPosition) error {
	if p.Index < 0 || p.Index > len(f.Samples) || p.Epoch < 0 {
		return fmt.Errorf("feed position %+v is outside a dataset of %d samples", p, len(f.Samples))
	}
	f.Close()
	f.pos = p
	return nil
}

func (f *LLaVAFeed) Close() {
	if f.loader != nil {
		f.loader.Close()
		f.loader = nil
	}
}

func (f *LLaVAFeed) Next() (Sample, error) {
	if len(f.Samples) == 0 {
		return Sample{}, errors.New("the training data has no samples")
	}
	if f.pos.Index >= len(f.Samples) {
		f.Close()
		f.pos = FeedPosition{Epoch: f.pos.Epoch + 1}
	}
	if f.loader == nil {
		order := Shuffle(len(f.Samples), f.Seed, f.pos.Epoch)[f.pos.Index:]
		maxLen := f.Student.Model.Config.TokenizerModelMaxLength
		f.loader = data.NewLoader(f.Samples, order, max(1, f.Workers), 8, func(s data.Sample) (data.Example, error) {
			return data.LoadExampleMaxLen(s, f.Images, f.Student.Tokenizer, f.Student.PP, maxLen)
		})
	}
	ex, _, err := f.loader.Next()
	if err == io.EOF {
		f.pos.Index = len(f.Samples)
		return f.Next()
	}
	if err != nil {
		return Sample{}, err
	}
	f.pos.Index++
	s := Sample{Student: vlm.ExampleInput(ex)}
	s.Teacher = s.Student
	if f.Teacher != nil && f.Teacher.PP != f.Student.PP && len(s.Student.Images) > 0 {
		tex, err := data.LoadExampleMaxLen(f.Samples[f.orderIndex()], f.Images, f.Teacher.Tokenizer, f.Teacher.PP, maxInt)
		if err != nil {
			return Sample{}, err
		}
		s.Teacher = vlm.ExampleInput(tex)
	}
	return s, nil
}

const maxInt = 1 << 30

// orderIndex is the sample index just returned by Next.
func (f *LLaVAFeed) orderIndex() int {
	return Shuffle(len(f.Samples), f.Seed, f.pos.Epoch)[f.pos.Index-1]
}

// SliceFeed serves prepared inputs in a seeded per-epoch order (tests, the demo).
type SliceFeed struct {
	Items []Sample
	Seed  uint64
	pos   FeedPosition
	order []int
}

func (f *SliceFeed) Position() FeedPosition { return f.pos }
func (f *SliceFeed) Seek(p FeedPosition) error {
	f.pos, f.order = p, nil
	return nil
}
func (f *SliceFeed) Close() {}
func (f *SliceFeed) Next() (Sample, error) {
	if len(f.Items) == 0 {
		return Sample{}, errors.New("the training data has no samples")
	}
	if f.pos.Index >= len(f.Items) {
		f.pos = FeedPosition{Epoch: f.pos.Epoch + 1}
		f.order = nil
	}
	if f.order == nil {
		f.order = Shuffle(len(f.Items), f.Seed, f.pos.Epoch)
	}
	s := f.Items[f.order[f.pos.Index]]
	f.pos.Index++
	return s, nil
}

// PrepareSamples loads every sample for both models (in order), for evaluation.
func PrepareSamples(samples []data.Sample, images string, student, teacher *vlm.VLM) ([]Sample, error) {
	out := make([]Sample, len(samples))
	for i, s := range samples {
		in, err := student.Input(s, images)
		if err != nil {
			return nil, err
		}
		out[i] = Sample{Student: in, Teacher: in}
		if teacher != nil && teacher.PP != student.PP {
			if out[i].Teacher, err = teacher.Input(s, images); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
