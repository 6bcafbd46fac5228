package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/switchkd/switchkd/eval"
)

// evalScoreResults is the results.json written by scoreAnswersFile.
type evalScoreResults struct {
	Task        string             `json:"task"`
	Metrics     map[string]float64 `json:"metrics"`
	MetricOrder []string           `json:"metric_order"`
	Answers     string             `json:"answers_file"`
	Annotations string             `json:"annotations,omitempty"`
	Time        string             `json:"time"`
}

// scoreAnswersFile scores an existing answers file (LLaVA answers JSON lines; for MME also an
// eval_tool results directory) of task against annotationsPath, prints the metrics as a Markdown
// table on stdout and, when outDir is not "", writes outDir/results.json atomically.
func scoreAnswersFile(task, answersPath, annotationsPath, outDir string, stdout io.Writer) error {
	t, err := eval.Lookup(task)
	if err != nil {
		return err
	}
	m, err := eval.ScoreFiles(t.Name, answersPath, annotationsPath)
	if err != nil {
		return err
	}
	if err := m.WriteMarkdown(stdout); err != nil {
		return err
	}
	if outDir == "" {
		return nil
	}
	abs := func(p string) string {
		if p == "" {
			return ""
		}
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	res := evalScoreResults{Task: t.Name, Metrics: m.Values, MetricOrder: m.Keys, Answers: abs(answersPath),
		Annotations: abs(annotationsPath), Time: time.Now().UTC().Format(time.RFC3339)}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return evalWriteResultsAtomic(filepath.Join(outDir, "results.json"), append(data, '\n'))
}

// evalWriteResultsAtomic writes data to a temporary file beside path and renames it into place.
func evalWriteResultsAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %v", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
