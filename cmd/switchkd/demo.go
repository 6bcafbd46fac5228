package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/switchkd/switchkd/demo"
)

func init() {
	register(&command{
		name: "demo",
		summary: "The main job in one command: generate the synthetic world, train a teacher VLM, train students by\n" +
			"SFT, vanilla KD, BiLD, DBiLD, the visual switch alone and Switch-KD, evaluate all, print the results table.",
		usage: "[--out DIR] [--quick] [--seeds N] [--backend go]",
		setup: func(fs *flag.FlagSet) func([]string) error {
			out := fs.String("out", "demo-out", "output folder: world/, assets/, models/, runs/, results.md, results.json, per_type_accuracy.png")
			quick := fs.Bool("quick", false, "smoke-test profile: tiny world, few steps, one seed (a few minutes; not a meaningful comparison)")
			seeds := fs.Int("seeds", 0, "student seeds per method (0: the profile's, 3 by default, 1 with --quick)")
			backend := backendFlag(fs)
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *seeds < 0 {
					return usagef("--seeds must be >= 0")
				}
				p := demo.DefaultProfile()
				if *quick {
					p = demo.QuickProfile()
				}
				if *seeds > 0 {
					p.Seeds = *seeds
				}
				res, err := demo.Run(demo.Options{Out: *out, Profile: p, Backend: *backend, Log: os.Stderr, Progress: os.Stderr})
				if err != nil {
					return err
				}
				fmt.Fprintln(stdout)
				fmt.Fprint(stdout, res.Table)
				return nil
			}
		},
	})
}
