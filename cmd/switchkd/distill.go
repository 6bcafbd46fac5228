package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/tokenizer"
	"github.com/switchkd/switchkd/train"
	"github.com/switchkd/switchkd/vlm"
)

// multiFlag collects repeated --set key=value flags.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// runFlags are the everyday settings that override the YAML file.
type runFlags struct {
	config, teacher, student, data, images, out string
	steps, saveEvery                            int
	sets                                        multiFlag
}

func addRunFlags(fs *flag.FlagSet, withOut bool) *runFlags {
	f := &runFlags{}
	fs.StringVar(&f.config, "config", "", "YAML run configuration (docs/DISTILL.md); flags below override it")
	fs.StringVar(&f.teacher, "teacher", "", "teacher model folder (TinyLLaVA HF layout)")
	fs.StringVar(&f.student, "student", "", "student model folder (TinyLLaVA HF layout)")
	fs.StringVar(&f.data, "data", "", "training data: LLaVA JSON or JSONL")
	fs.StringVar(&f.images, "images", "", "folder the samples' image paths are relative to")
	fs.Var(&f.sets, "set", "override a config key: --set objective.align=bild --set stages.0.lr=1e-4 (repeatable)")
	if withOut {
		fs.StringVar(&f.out, "out", "", "output folder: metrics.jsonl, checkpoints/, student/, loss_curves.png")
		fs.IntVar(&f.steps, "steps", 0, "optimizer steps of the last stage (overrides the config)")
		fs.IntVar(&f.saveEvery, "save-every", -1, "checkpoint every N steps (0: only at the end)")
	}
	return f
}

func (f *runFlags) load() (train.RunConfig, error) {
	sets := append([]string(nil), f.sets...)
	cfg, err := train.LoadRunConfig(f.config, sets)
	if err != nil {
		return cfg, err
	}
	for _, kv := range [][2]*string{{&cfg.Teacher, &f.teacher}, {&cfg.Student, &f.student}, {&cfg.Data, &f.data}, {&cfg.Images, &f.images}, {&cfg.Out, &f.out}} {
		if *kv[1] != "" {
			*kv[0] = *kv[1]
		}
	}
	if f.steps > 0 {
		cfg.Stages[len(cfg.Stages)-1].Steps = f.steps
	}
	if f.saveEvery >= 0 {
		cfg.Checkpoint.SaveEvery = f.saveEvery
	}
	return cfg, nil
}

// loadRun reads the run's data and loads its models.
func loadRun(cfg train.RunConfig) (samples []data.Sample, student, teacher *vlm.VLM, err error) {
	if samples, err = data.ReadLLaVAJSON(cfg.Data); err != nil {
		return nil, nil, nil, err
	}
	student, teacher, err = loadPair(cfg)
	return samples, student, teacher, err
}

// loadPair loads the student and (if given) the teacher and checks they share a tokenizer.
func loadPair(cfg train.RunConfig) (student, teacher *vlm.VLM, err error) {
	if student, err = vlm.Load(cfg.Student, cfg.Backend); err != nil {
		return nil, nil, fmt.Errorf("student: %w", err)
	}
	if cfg.Teacher == "" {
		return student, nil, nil
	}
	if teacher, err = vlm.Load(cfg.Teacher, cfg.Backend); err != nil {
		return nil, nil, fmt.Errorf("teacher: %w", err)
	}
	if err := tokenizer.Compare(teacher.Tokenizer, student.Tokenizer); err != nil {
		return nil, nil, fmt.Errorf("teacher and student must share a tokenizer: %w", err)
	}
	vt, vs := teacher.Model.Config.Text.VocabSize, student.Model.Config.Text.VocabSize
	if vt != vs {
		fmt.Fprintf(os.Stderr, "note: teacher vocabulary %d and student vocabulary %d differ only by padding rows (same tokenizer); distillation uses the first %d logits\n", vt, vs, min(vt, vs))
	}
	return student, teacher, nil
}

func init() {
	register(&command{
		name:    "distill",
		summary: "Train a student VLM from a frozen teacher with Switch-KD (or a baseline objective).",
		usage:   "[--config FILE.yaml] [--set key=value ...] --teacher DIR --student DIR --data FILE --images DIR --out DIR [--steps N] [--save-every N] [--resume]",
		setup: func(fs *flag.FlagSet) func([]string) error {
			f := addRunFlags(fs, true)
			resume := fs.Bool("resume", false, "continue from the latest checkpoint in --out")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				cfg, err := f.load()
				if err != nil {
					return err
				}
				if err := requireFlags("student", cfg.Student, "data", cfg.Data, "out", cfg.Out); err != nil {
					return err
				}
				return runDistill(cfg, *resume)
			}
		},
	})
}

func runDistill(cfg train.RunConfig, resume bool) error {
	stages, opt, err := cfg.Build()
	if err != nil {
		return err
	}
	samples, student, teacher, err := loadRun(cfg)
	if err != nil {
		return err
	}
	feed := &train.LLaVAFeed{Samples: samples, Images: cfg.Images, Student: student, Teacher: teacher, Seed: cfg.Seed, Workers: cfg.Workers}
	defer feed.Close()
	if cfg.Logging.Progress {
		opt.Progress = os.Stderr
	}
	tr := &train.Trainer{Student: student.Model, Stages: stages, Opt: opt, Feed: feed}
	if teacher != nil {
		tr.Teacher = teacher.Model
	}
	if resume {
		ok, err := tr.Resume()
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintf(os.Stderr, "no checkpoint in %s: starting from scratch\n", filepath.Join(cfg.Out, "checkpoints"))
		}
	} else if cps, _ := os.ReadDir(filepath.Join(cfg.Out, "checkpoints")); len(cps) > 0 {
		return fmt.Errorf("%s already holds checkpoints: pass --resume to continue, or choose another --out", cfg.Out)
	}
	if err := tr.Run(); err != nil {
		return err
	}
	if cfg.Logging.Plots {
		if err := train.PlotMetrics(filepath.Join(cfg.Out, "metrics.jsonl"), filepath.Join(cfg.Out, "loss_curves.png")); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "student saved to %s\n", filepath.Join(cfg.Out, "student"))
	return nil
}
