// Package world generates a small synthetic visual world for miniature
// Switch-KD experiments: procedurally drawn scenes (coloured shapes on a
// coarse grid, sometimes a legible character), questions about them in
// LLaVA JSON format, and benchmark-style scoring helpers.
//
// Everything is deterministic in the seed: the same Config produces
// byte-identical PNG and JSON files, whatever the number of render workers.
//
// Design in numbers (defaults):
//   - 64x64 RGB images, a 3x3 grid of 21 px cells, one item per cell; a
//     vision tower with patch 8 sees 64 patches.
//   - 1-4 objects per image: 5 shapes (circle, square, triangle, cross, ring)
//     x 7 colours (red, orange, yellow, green, blue, purple, pink) x 2 sizes
//     (large 18 px, small 11 px). No two objects share colour and shape, so
//     "the {colour} {shape}" always names exactly one object.
//   - Sometimes one character from a 5x7 bitmap font (letters A C E F H K L P R
//     T X Y, digits 2-9): standalone in its own cell (3x scale, 15x21 px) or
//     printed on a large circle or square (2x scale, 10x14 px).
//   - Six question types (exist, attribute, count, spatial, mc, ocr) plus the
//     caption samples used for connector training. Answers are balanced by a
//     greedy balancer per question template, so text priors are near chance.
package world

import (
	"fmt"
	"slices"
)

// Question types.
const (
	TypeCaption   = "caption"
	TypeExist     = "exist"
	TypeAttribute = "attribute"
	TypeCount     = "count"
	TypeSpatial   = "spatial"
	TypeMC        = "mc"
	TypeOCR       = "ocr"
)

// QATypes are the question types scored per type, in canonical order.
var QATypes = []string{TypeExist, TypeAttribute, TypeCount, TypeSpatial, TypeMC, TypeOCR}

// POPE negative sampling splits for exist questions.
const (
	PopeRandom      = "random"
	PopePopular     = "popular"
	PopeAdversarial = "adversarial"
)

// PopeSplits lists the POPE splits in canonical order.
var PopeSplits = []string{PopeRandom, PopePopular, PopeAdversarial}

// Dataset splits.
const (
	SplitTrain = "train"
	SplitVal   = "val"
	SplitTest  = "test"
)

// Splits lists the dataset splits in canonical order.
var Splits = []string{SplitTrain, SplitVal, SplitTest}

// Shapes, colours, sizes and characters of the world.
var (
	Shapes  = []string{"circle", "square", "triangle", "cross", "ring"}
	Colours = []string{"red", "orange", "yellow", "green", "blue", "purple", "pink"}
	Sizes   = []string{"large", "small"}
	Letters = []string{"A", "C", "E", "F", "H", "K", "L", "P", "R", "T", "X", "Y"}
	Digits  = []string{"2", "3", "4", "5", "6", "7", "8", "9"}
)

// shapePlural maps a shape to its plural.
var shapePlural = map[string]string{
	"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses", "ring": "rings",
}

// Plural returns the plural of a shape word.
func Plural(shape string) string { return shapePlural[shape] }

// colourRGB are the nominal colours; objects jitter around them.
var colourRGB = map[string][3]uint8{
	"red":    {215, 35, 35},
	"orange": {245, 135, 20},
	"yellow": {235, 205, 25},
	"green":  {40, 160, 60},
	"blue":   {35, 75, 215},
	"purple": {140, 55, 185},
	"pink":   {245, 120, 190},
}

// ColourRGB returns the nominal RGB of a colour word.
func ColourRGB(colour string) ([3]uint8, bool) { c, ok := colourRGB[colour]; return c, ok }

// backgrounds are the light tones images are painted on.
var backgrounds = [][3]uint8{{205, 205, 205}, {222, 212, 192}, {196, 206, 218}, {204, 214, 198}}

// textRGB is the colour of standalone characters.
var textRGB = [3]uint8{25, 25, 40}

// Chars returns every character the world writes (letters then digits).
func Chars() []string { return slices.Concat(Letters, Digits) }

// IsDigit reports whether a world character is a digit.
func IsDigit(ch string) bool { return slices.Contains(Digits, ch) }

// Config drives Generate. Num* count images; each image gets
// QuestionsPerImage question samples of distinct types.
type Config struct {
	Seed              uint64   `json:"seed"`
	ImageSize         int      `json:"image_size"`          // px, square; >= 32
	Grid              int      `json:"grid"`                // cells per side; 3 by default
	NumTrain          int      `json:"num_train"`           // train images
	NumVal            int      `json:"num_val"`             // val images
	NumTest           int      `json:"num_test"`            // test images
	QuestionsPerImage int      `json:"questions_per_image"` // 1..len(Types)
	MinObjects        int      `json:"min_objects"`         // >= 1
	MaxObjects        int      `json:"max_objects"`         // <= 4 and < Grid*Grid
	CharProb          float64  `json:"char_prob"`           // chance of a character in an image without an ocr question
	Types             []string `json:"types"`               // question types; nil means QATypes
	Workers           int      `json:"-"`                   // render goroutines; 0 = GOMAXPROCS. Never changes the output.
}

// DefaultConfig is the laptop experiment preset: 1000 train images x 4
// questions = 4000 train samples, 400 val, 1200 test (200 per type).
func DefaultConfig() Config {
	return Config{
		Seed: 1, ImageSize: 64, Grid: 3,
		NumTrain: 1000, NumVal: 100, NumTest: 300,
		QuestionsPerImage: 4, MinObjects: 1, MaxObjects: 4, CharProb: 0.25,
	}
}

// QuickConfig is a few hundred samples for smoke tests.
func QuickConfig() Config {
	c := DefaultConfig()
	c.NumTrain, c.NumVal, c.NumTest = 60, 15, 30
	return c
}

func (c Config) types() []string {
	if len(c.Types) == 0 {
		return QATypes
	}
	return c.Types
}

// Validate reports a configuration the generator cannot honour.
func (c Config) Validate() error {
	if c.ImageSize < 32 {
		return fmt.Errorf("world: ImageSize %d < 32", c.ImageSize)
	}
	if c.Grid < 2 || c.ImageSize/c.Grid < 10 {
		return fmt.Errorf("world: Grid %d unusable with ImageSize %d (cells must be >= 10 px)", c.Grid, c.ImageSize)
	}
	if c.NumTrain < 0 || c.NumVal < 0 || c.NumTest < 0 || c.NumTrain+c.NumVal+c.NumTest == 0 {
		return fmt.Errorf("world: bad split sizes %d/%d/%d", c.NumTrain, c.NumVal, c.NumTest)
	}
	if c.MinObjects < 1 || c.MaxObjects < c.MinObjects || c.MaxObjects > 4 || c.MaxObjects >= c.Grid*c.Grid {
		return fmt.Errorf("world: objects %d..%d out of range 1..4", c.MinObjects, c.MaxObjects)
	}
	if c.MaxObjects < 2 && slices.Contains(c.types(), TypeSpatial) {
		return fmt.Errorf("world: spatial questions need MaxObjects >= 2")
	}
	if c.CharProb < 0 || c.CharProb > 1 {
		return fmt.Errorf("world: CharProb %v out of [0,1]", c.CharProb)
	}
	seen := map[string]bool{}
	for _, t := range c.types() {
		if !slices.Contains(QATypes, t) || seen[t] {
			return fmt.Errorf("world: bad or repeated question type %q", t)
		}
		seen[t] = true
	}
	if c.QuestionsPerImage < 1 || c.QuestionsPerImage > len(c.types()) {
		return fmt.Errorf("world: QuestionsPerImage %d out of 1..%d", c.QuestionsPerImage, len(c.types()))
	}
	return nil
}
