package eval

import (
	"fmt"
	"os"
)

// References are the loaded annotations of one task (one of *VQARefs, *GQARefs, *SQARefs,
// *POPERefs, *MMEGT, *MMBRefs, *MMMURefs).
type References any

// LoadReferences loads the annotations of task from path (see Task.Annotations for the layout).
func LoadReferences(task, path string) (References, error) {
	t, err := Lookup(task)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s annotations: %v", t.Name, err)
	}
	switch t.Name {
	case "vqav2", "vizwiz", "textvqa":
		return LoadVQARefs(path)
	case "gqa":
		return LoadGQARefs(path)
	case "sqa":
		return LoadSQARefs(path, "test")
	case "pope":
		return LoadPOPERefs(path)
	case "mme":
		return LoadMMEGT(path)
	case "mmbench", "mmbench_cn":
		return LoadMMBenchTSV(path)
	case "mmmu":
		return LoadMMMURefs(path)
	}
	return nil, fmt.Errorf("no loader for task %s", t.Name)
}

// Score scores answers of task against refs (from LoadReferences).
func Score(task string, answers []Answer, refs References) (*Metrics, error) {
	t, err := Lookup(task)
	if err != nil {
		return nil, err
	}
	if len(answers) == 0 {
		return nil, fmt.Errorf("%s: no answers to score", t.Name)
	}
	wrong := func() error { return fmt.Errorf("%s: references of type %T do not fit the task", t.Name, refs) }
	switch t.Name {
	case "vqav2", "vizwiz", "textvqa":
		r, ok := refs.(*VQARefs)
		if !ok {
			return nil, wrong()
		}
		return ScoreVQA(t.Name, answers, r)
	case "gqa":
		r, ok := refs.(*GQARefs)
		if !ok {
			return nil, wrong()
		}
		return ScoreGQA(answers, r)
	case "sqa":
		r, ok := refs.(*SQARefs)
		if !ok {
			return nil, wrong()
		}
		return ScoreSQA(answers, r)
	case "pope":
		r, ok := refs.(*POPERefs)
		if !ok {
			return nil, wrong()
		}
		return ScorePOPE(answers, r)
	case "mme":
		r, ok := refs.(*MMEGT)
		if !ok {
			return nil, wrong()
		}
		rows, err := MMERowsFromAnswers(answers, r)
		if err != nil {
			return nil, err
		}
		return ScoreMME(rows)
	case "mmbench", "mmbench_cn":
		r, ok := refs.(*MMBRefs)
		if !ok {
			return nil, wrong()
		}
		return ScoreMMBench(t.Name, answers, r)
	case "mmmu":
		r, ok := refs.(*MMMURefs)
		if !ok {
			return nil, wrong()
		}
		return ScoreMMMU(answers, r)
	}
	return nil, fmt.Errorf("no scorer for task %s", t.Name)
}

// ScoreFiles reads an answers file and the annotations and scores them. For MME, answersPath may
// instead be an eval_tool results directory (<subtask>.txt files), and annotationsPath is then
// ignored.
func ScoreFiles(task, answersPath, annotationsPath string) (*Metrics, error) {
	t, err := Lookup(task)
	if err != nil {
		return nil, err
	}
	if t.Name == "mme" {
		if st, err := os.Stat(answersPath); err == nil && st.IsDir() {
			rows, err := LoadMMEResultsDir(answersPath)
			if err != nil {
				return nil, err
			}
			return ScoreMME(rows)
		}
	}
	answers, err := ReadAnswers(answersPath)
	if err != nil {
		return nil, err
	}
	if annotationsPath == "" {
		return nil, fmt.Errorf("%s: an annotations path is needed: %s", t.Name, t.Annotations)
	}
	refs, err := LoadReferences(t.Name, annotationsPath)
	if err != nil {
		return nil, err
	}
	return Score(t.Name, answers, refs)
}
