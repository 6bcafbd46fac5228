package demo

import (
	"github.com/switchkd/switchkd/train"
	"github.com/switchkd/switchkd/world"
)

// Method is one way of training the student.
type Method struct {
	Name  string `json:"name"`  // short id, used in folder names
	Label string `json:"label"` // table row
	// Objective: every method keeps the cross-entropy term (weight 1) and differs in the
	// distillation terms only.
	Objective train.Objective `json:"objective"`
}

func objective(align, vsd train.Divergence) train.Objective {
	o := train.DefaultObjective()
	o.Align, o.VSD = align, vsd
	if align == train.None {
		o.WAlign = 0
	}
	if vsd == train.None {
		o.WVSD = 0
	}
	return o
}

// Methods are the student-training methods the demo compares, in table order: supervised
// fine-tuning alone, three logit-alignment baselines without the visual switch (vanilla KD with
// forward KL, BiLD, DBiLD), the visual switch alone, and full Switch-KD (DBiLD align + DBiLD
// visual switch). All share tau 3, the DBiLD knee settings and weight 1 per term.
func Methods() []Method {
	return []Method{
		{Name: "sft", Label: "SFT (CE only)", Objective: objective(train.None, train.None)},
		{Name: "kd", Label: "Vanilla KD (CE + FKL)", Objective: objective(train.FKL, train.None)},
		{Name: "bild", Label: "BiLD (CE + BiLD)", Objective: objective(train.BiLD, train.None)},
		{Name: "dbild", Label: "DBiLD align only", Objective: objective(train.DBiLD, train.None)},
		{Name: "vsd", Label: "Visual switch only (CE + VSD)", Objective: objective(train.None, train.DBiLD)},
		{Name: "switchkd", Label: "Switch-KD (CE + DBiLD + VSD)", Objective: objective(train.DBiLD, train.DBiLD)},
	}
}

// Recipe is how one model is trained: a single stage over every module.
type Recipe struct {
	Steps       int     `json:"steps"`
	LR          float64 `json:"lr"`
	WarmupRatio float64 `json:"warmup_ratio"`
	GlobalBatch int     `json:"global_batch"`
	MicroBatch  int     `json:"micro_batch"`
}

// Profile is a complete demo configuration.
type Profile struct {
	Name      string       `json:"name"`
	World     world.Config `json:"world"`
	VocabSize int          `json:"vocab_size"` // BPE vocabulary, "<|endoftext|>" included
	Teacher   ModelSpec    `json:"teacher"`
	Student   ModelSpec    `json:"student"`
	// TeacherRecipe trains the teacher from scratch with cross-entropy on the caption and QA
	// training samples (vision tower, connector and LLM together).
	TeacherRecipe Recipe `json:"teacher_recipe"`
	// StudentRecipe is shared by every method and seed.
	StudentRecipe Recipe `json:"student_recipe"`
	// Captions: whether the caption samples join the training data (teacher and students alike).
	Captions bool `json:"captions"`
	// Pack: one multi-turn conversation per image (all its training rounds) instead of one
	// sample per round.
	Pack  bool `json:"pack"`
	Seeds int  `json:"seeds"`
	// EvalBatch is the generation batch size; EvalPerType caps the test questions scored per
	// question type (0: all), the same questions for every model.
	EvalBatch   int      `json:"eval_batch"`
	EvalPerType int      `json:"eval_per_type"`
	Methods     []Method `json:"methods"`
	SeqBucket   int      `json:"seq_bucket"`
	PosBucket   int      `json:"pos_bucket"`
}

// Shared vision tower: SigLIP-style ViT on the world's 64x64 images, patch 8 -> 64 tokens.
// TinyLLaVA reads layer -2, so 3 of the 4 layers are used.
var demoVision = VisionSpec{Hidden: 64, Intermediate: 256, Layers: 4, Heads: 4, Patch: 8}

// DefaultProfile is sized for a 2-core CPU (about 20 CPU-minutes in all): the default world, a
// teacher trained for 400 steps (about 3 epochs of the 1000 training images' conversations) and
// 3 seeds x 6 methods of students trained for 50 steps each (0.4 epoch).
func DefaultProfile() Profile {
	return Profile{
		Name:      "default",
		World:     world.DefaultConfig(),
		VocabSize: 512,
		Teacher: ModelSpec{Name: "teacher", Vision: demoVision,
			LLM: LLMSpec{Hidden: 128, Intermediate: 320, Layers: 3, Heads: 4, KVHeads: 2}},
		Student: ModelSpec{Name: "student", Vision: demoVision,
			LLM: LLMSpec{Hidden: 64, Intermediate: 192, Layers: 2, Heads: 4, KVHeads: 2}},
		TeacherRecipe: Recipe{Steps: 400, LR: 2e-3, WarmupRatio: 0.05, GlobalBatch: 8, MicroBatch: 8},
		StudentRecipe: Recipe{Steps: 50, LR: 2e-3, WarmupRatio: 0.05, GlobalBatch: 8, MicroBatch: 8},
		Captions:      true,
		Pack:          true,
		Seeds:         3,
		EvalBatch:     32,
		EvalPerType:   0,
		Methods:       Methods(),
		SeqBucket:     32,
		PosBucket:     32,
	}
}

// QuickProfile is a smoke test of the whole pipeline (tiny world, few steps, one seed): minutes,
// not a meaningful comparison.
func QuickProfile() Profile {
	p := DefaultProfile()
	p.Name = "quick"
	p.World = world.QuickConfig()
	p.World.NumTrain = 120
	p.TeacherRecipe.Steps = 60
	p.StudentRecipe.Steps = 8
	p.Seeds = 1
	p.EvalPerType = 20
	return p
}
