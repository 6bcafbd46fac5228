package demo

import (
	"math/rand/v2"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/world"
)

// Conversations packs the training samples of each image into one multi-turn LLaVA conversation
// (as LLaVA's instruction data is laid out): the image and the system prompt are then encoded
// once for all of an image's questions, which cuts the tokens per question about threefold on the
// world (64 image tokens + ~30 prompt tokens vs ~20 per round). The rounds of each image are put
// in a seeded random order, so every question type is sometimes the first, right after the image,
// as in the single-turn evaluation prompts; the first round carries "<image>\n".
func Conversations(samples []world.Sample, seed uint64) []data.Sample {
	var order []string
	byImage := map[string][]world.Sample{}
	for _, s := range samples {
		if _, ok := byImage[s.Image]; !ok {
			order = append(order, s.Image)
		}
		byImage[s.Image] = append(byImage[s.Image], s)
	}
	out := make([]data.Sample, 0, len(order))
	for i, img := range order {
		rounds := byImage[img]
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		rng.Shuffle(len(rounds), func(a, b int) { rounds[a], rounds[b] = rounds[b], rounds[a] })
		ds := data.Sample{ID: "conv-" + rounds[0].ID, Image: img}
		for j, r := range rounds {
			q := r.Question()
			if j == 0 {
				q = world.ImagePrefix + q
			}
			ds.Conversations = append(ds.Conversations, data.Turn{From: "human", Value: q}, data.Turn{From: "gpt", Value: r.Answer()})
		}
		out = append(out, ds)
	}
	return out
}

// Singles converts world samples to single-turn LLaVA samples.
func Singles(samples []world.Sample) []data.Sample {
	out := make([]data.Sample, len(samples))
	for i, s := range samples {
		out[i] = data.Sample{ID: s.ID, Image: s.Image}
		for _, t := range s.Conversations {
			out[i].Conversations = append(out[i].Conversations, data.Turn{From: t.From, Value: t.Value})
		}
	}
	return out
}
