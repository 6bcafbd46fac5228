package main

import (
	"encoding/json"
	"flag"

	"github.com/switchkd/switchkd/models/tinyllava"
	"github.com/switchkd/switchkd/train"
	"github.com/switchkd/switchkd/vlm"
)

func init() {
	register(&command{
		name:    "losses",
		summary: "Evaluate the distillation objective without training: one JSON line per sample\n{\"id\", \"tokens\", \"ce\", \"align\", \"vsd\", \"total\"}, each averaged over the sample's answer tokens.",
		usage:   "--teacher DIR --student DIR --data FILE.json --images DIR [--config FILE.yaml] [--set key=value ...]",
		setup: func(fs *flag.FlagSet) func([]string) error {
			f := addRunFlags(fs, false)
			batch := fs.Int("batch-size", 4, "samples per forward pass")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				cfg, err := f.load()
				if err != nil {
					return err
				}
				if err := requireFlags("student", cfg.Student, "data", cfg.Data); err != nil {
					return err
				}
				if *batch <= 0 {
					return usagef("--batch-size must be positive")
				}
				obj, err := cfg.StageObjective(len(cfg.Stages) - 1)
				if err != nil {
					return err
				}
				samples, student, teacher, err := loadRun(cfg)
				if err != nil {
					return err
				}
				items, err := train.PrepareSamples(samples, cfg.Images, student, teacher)
				if err != nil {
					return err
				}
				res, err := train.Losses(student.Model, teacherModel(teacher), obj, items, *batch)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(stdout)
				for _, r := range res {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
		},
	})
}

func teacherModel(v *vlm.VLM) *tinyllava.Model {
	if v == nil {
		return nil
	}
	return v.Model
}
