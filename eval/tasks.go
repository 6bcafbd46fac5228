// Package eval scores TinyLLaVA / LLaVA answers on the ten benchmarks of the Switch-KD paper (MME,
// MMBench, MMBench-CN, VQAv2, GQA, ScienceQA-IMG, MMMU, TextVQA, VizWiz, POPE) with the rules of
// the official scorers (LLaVA's m4c_evaluator / eval_pope / eval_science_qa / convert_gqa_for_eval,
// GQA eval.py, MME eval_tool/calculation.py, VLMEvalKit's MMBench circular evaluation, MMMU
// eval_utils), and builds their prompts the way TinyLLaVA / LLaVA evaluation does. It needs no model.
package eval

import (
	"fmt"
	"sort"
	"strings"
)

// Prompt suffixes of LLaVA-1.5 / TinyLLaVA evaluation.
const (
	SuffixShort            = "Answer the question using a single word or phrase."
	SuffixMultipleChoice   = "Answer with the option's letter from the given choices directly."
	SuffixMultipleChoiceCN = "请直接回答选项字母。"
	SuffixVizWiz           = "When the provided information is insufficient, respond with 'Unanswerable'.\nAnswer the question using a single word or phrase."
)

// Task describes one benchmark.
type Task struct {
	Name         string // registry name, e.g. "mmbench_cn"
	Title        string // name in result tables, e.g. "MMBench-CN"
	PromptSuffix string // appended on a new line after the question (and options)
	// Annotations says what Score's annotations path must be.
	Annotations string
	// Headline is the metric key the paper reports.
	Headline string
}

var tasks = map[string]*Task{
	"mme": {Name: "mme", Title: "MME", PromptSuffix: SuffixShort, Headline: "perception",
		Annotations: "MME_Benchmark_release_version directory (<subtask>/[questions_answers_YN/]*.txt); or give the eval_tool results directory (<subtask>.txt with image, question, gt, prediction) as the answers path"},
	"mmbench": {Name: "mmbench", Title: "MMBench", PromptSuffix: SuffixMultipleChoice, Headline: "accuracy",
		Annotations: "MMBench TSV (e.g. mmbench_dev_20230712.tsv)"},
	"mmbench_cn": {Name: "mmbench_cn", Title: "MMBench-CN", PromptSuffix: SuffixMultipleChoiceCN, Headline: "accuracy",
		Annotations: "MMBench-CN TSV (e.g. mmbench_dev_cn_20231003.tsv)"},
	"vqav2": {Name: "vqav2", Title: "VQAv2", PromptSuffix: SuffixShort, Headline: "accuracy",
		Annotations: "VQAv2 annotation JSON ({\"annotations\": [{question_id, answers, answer_type}]})"},
	"gqa": {Name: "gqa", Title: "GQA", PromptSuffix: SuffixShort, Headline: "accuracy",
		Annotations: "GQA questions JSON (testdev_balanced_questions.json) or its directory"},
	"sqa": {Name: "sqa", Title: "ScienceQA-IMG", PromptSuffix: SuffixMultipleChoice, Headline: "img_accuracy",
		Annotations: "ScienceQA directory with problems.json and pid_splits.json (test split)"},
	"mmmu": {Name: "mmmu", Title: "MMMU", PromptSuffix: SuffixMultipleChoice, Headline: "accuracy",
		Annotations: "MMMU answer_dict_val.json or a question list with id, question_type, answer, all_choices, index2ans"},
	"textvqa": {Name: "textvqa", Title: "TextVQA", PromptSuffix: SuffixShort, Headline: "accuracy",
		Annotations: "TextVQA_0.5.1_val.json"},
	"vizwiz": {Name: "vizwiz", Title: "VizWiz", PromptSuffix: SuffixVizWiz, Headline: "accuracy",
		Annotations: "VizWiz annotation JSON (val.json) or a list with question_id and answers"},
	"pope": {Name: "pope", Title: "POPE", PromptSuffix: SuffixShort, Headline: "f1",
		Annotations: "POPE directory with coco_pope_<split>.json label files and llava_pope_test.jsonl (here or one level up), or one JSON-lines file with question_id, label, category"},
}

// Names lists the registered task names, sorted.
func Names() []string {
	out := make([]string, 0, len(tasks))
	for n := range tasks {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the task registered under name (case-insensitive; "scienceqa", "sqa_img",
// "mmbench-cn" and "mmbench_en" are accepted aliases).
func Lookup(name string) (*Task, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	switch n {
	case "scienceqa", "sqa_img", "sqa-img", "scienceqa_img", "scienceqa-img":
		n = "sqa"
	case "mmbench-cn", "mmb_cn", "mmbench_cn":
		n = "mmbench_cn"
	case "mmbench_en", "mmb":
		n = "mmbench"
	}
	if t, ok := tasks[n]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("unknown eval task %q (known: %s)", name, strings.Join(Names(), ", "))
}

// ShortPrompt is the question text of a short-answer task (VQAv2, GQA, TextVQA, MME, POPE,
// VizWiz): the question, a newline and the suffix — LLaVA's llava_*.jsonl "text" field. TextVQA's
// OCR line ("Reference OCR token: ...") belongs to the question and is kept between them.
func (t *Task) ShortPrompt(question string) string {
	return question + "\n" + t.PromptSuffix
}

// GenerationText is what the model sees for a question of this task: "<image>\n" + text when the
// question has an image (TinyLLaVA's model_vqa_loader / model_vqa_science / model_vqa_mmmu),
// before the conversation template.
func GenerationText(text string, hasImage bool) string {
	if hasImage {
		return "<image>\n" + text
	}
	return text
}

// MMMUPrompt builds an MMMU question as MMMU's construct_prompt with the llava1.5 config (used by
// TinyLLaVA): multiple choice "question\n(A) x\n(B) y\n\nAnswer with the option's letter from the
// given choices directly."; open "question\nAnswer the question using a single word or phrase.".
func MMMUPrompt(question string, options []string, multipleChoice bool) string {
	if !multipleChoice {
		return question + "\n" + SuffixShort
	}
	var b strings.Builder
	for i, o := range options {
		fmt.Fprintf(&b, "(%c) %s\n", 'A'+i, o)
	}
	return question + "\n" + b.String() + "\n" + SuffixMultipleChoice
}
