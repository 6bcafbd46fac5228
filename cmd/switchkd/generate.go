package main

import (
	"encoding/json"
	"flag"
	"fmt"

	"github.com/switchkd/switchkd/models/tinyllava"
	"github.com/switchkd/switchkd/vlm"
)

func init() {
	register(&command{
		name:    "generate",
		summary: "Answer a prompt about an image (greedy by default, KV cache, stops at end of text).",
		usage:   "--model DIR [--image IMG] --prompt TEXT [--max-new-tokens N] [--temperature T --top-p P --seed S] [--json]",
		setup: func(fs *flag.FlagSet) func([]string) error {
			model := fs.String("model", "", "TinyLLaVA model folder")
			image := fs.String("image", "", "image file (optional: text-only without it)")
			prompt := fs.String("prompt", "", "the question")
			maxNew := fs.Int("max-new-tokens", 128, "most tokens to generate")
			temp := fs.Float64("temperature", 0, "sampling temperature (0 = greedy)")
			topP := fs.Float64("top-p", 1, "nucleus sampling mass (with --temperature > 0)")
			seed := fs.Uint64("seed", 0, "sampling seed")
			asJSON := fs.Bool("json", false, "print {\"text\", \"ids\"} as JSON")
			backend := backendFlag(fs)
			return func(args []string) error {
				if err := requireFlags("model", *model, "prompt", *prompt); err != nil {
					return err
				}
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *maxNew < 0 || *temp < 0 || *topP < 0 || *topP > 1 {
					return usagef("--max-new-tokens and --temperature must be >= 0 and --top-p in [0, 1]")
				}
				v, err := vlm.Load(*model, *backend)
				if err != nil {
					return err
				}
				in, err := v.PromptInput("prompt", *image, *prompt)
				if err != nil {
					return err
				}
				texts, ids, err := v.GenerateText([]tinyllava.Input{in}, tinyllava.GenerateOptions{
					MaxNewTokens: *maxNew, Temperature: *temp, TopP: *topP, Seed: *seed})
				if err != nil {
					return err
				}
				if *asJSON {
					out := ids[0]
					if out == nil {
						out = []int{}
					}
					return json.NewEncoder(stdout).Encode(map[string]any{"text": texts[0], "ids": out})
				}
				fmt.Fprintln(stdout, texts[0])
				return nil
			}
		},
	})
}
