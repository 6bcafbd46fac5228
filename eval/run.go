package eval

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/models/tinyllava"
	"github.com/switchkd/switchkd/vlm"
)

// RunQuestion is one question to answer with a model, as LLaVA / TinyLLaVA evaluation asks it.
type RunQuestion struct {
	ID        string          // canonical question_id (as ReadAnswers spells it)
	RawID     json.RawMessage // question_id as the question file writes it (number or string)
	Round     int             // MMBench option rotation, with HasRound
	HasRound  bool
	Occ       int    // how many earlier questions share ID and Round (MME asks two per image id)
	Image     string // image file, relative to the images folder (or absolute); "" = none or embedded
	ImageData []byte // embedded image bytes (MMBench's base64 column); used instead of Image
	// Text is what the model sees after "<image>\n": question, options and the task's suffix.
	Text string
	// Prompt is the answers file's "prompt" field, spelled as the LLaVA script of the task writes
	// it (the MME and TextVQA scorers parse it; ScienceQA-IMG needs "<image>" in it).
	Prompt string
	Source string // "file:line", for error messages
}

// HasImage reports whether the question comes with an image.
func (q *RunQuestion) HasImage() bool { return q.Image != "" || q.ImageData != nil }

// Describe names the question in error messages: `question 12 (q.jsonl:3)`.
func (q *RunQuestion) Describe() string {
	s := "question " + q.ID
	if q.HasRound {
		s += fmt.Sprintf(" round %d", q.Round)
	}
	if q.Source != "" {
		s += " (" + q.Source + ")"
	}
	return s
}

// AnswerLine is one line of a LLaVA answers file, as model_vqa*.py writes it.
type AnswerLine struct {
	QuestionID json.RawMessage `json:"question_id"`
	RoundID    *int            `json:"round_id,omitempty"`
	Prompt     string          `json:"prompt"`
	Text       string          `json:"text"`
	AnswerID   string          `json:"answer_id"`
	ModelID    string          `json:"model_id"`
	Metadata   map[string]any  `json:"metadata"`
	Tokens     int             `json:"-"` // generated tokens (not written)
}

// loaderTasks are the tasks LLaVA evaluates with model_vqa_loader.py, whose answers' "prompt" is
// the question file's text as is (no image token).
var loaderTasks = map[string]bool{"vqav2": true, "gqa": true, "textvqa": true, "vizwiz": true, "pope": true, "mme": true}

// lastLine is the last line of a (possibly multi-line) suffix.
func lastLine(s string) string { return s[strings.LastIndexByte(s, '\n')+1:] }

// withSuffix appends "\n"+suffix to text unless the text already ends its instructions with one of
// the evaluation suffixes (LLaVA's question files carry them; raw questions do not).
func withSuffix(text, suffix string) string {
	for _, s := range []string{SuffixShort, SuffixMultipleChoice, SuffixMultipleChoiceCN, lastLine(suffix)} {
		if strings.Contains(text, s) {
			return text
		}
	}
	return text + "\n" + suffix
}

// stripImageToken removes "<image>" placeholders and surrounding space, as model_vqa_science does.
func stripImageToken(s string) string {
	if strings.Contains(s, data.ImageToken) {
		return pyStrip(strings.ReplaceAll(s, data.ImageToken, ""))
	}
	return s
}

// finish fills in Prompt and Occ.
func finishQuestions(task string, qs []RunQuestion) {
	occ := map[string]int{}
	for i := range qs {
		q := &qs[i]
		k := q.ID + "\x00" + strconv.Itoa(q.Round)
		q.Occ = occ[k]
		occ[k]++
		if q.Prompt != "" {
			continue
		}
		q.Prompt = q.Text
		if !loaderTasks[task] && q.HasImage() {
			q.Prompt = data.ImageToken + "\n" + q.Text
		}
	}
}

// LoadRunQuestions reads the questions of a task for generation:
//   - mmbench / mmbench_cn: the MMBench TSV (images embedded as base64), one question per row, or
//     with allRounds one per rotation of the options (LLaVA's --all-rounds);
//   - sqa: LLaVA's llava_test_CQM-A.json, or the ScienceQA directory / problems.json (test split,
//     prompts built with SQAPrompt, images at <pid>/<image>);
//   - any task: a LLaVA question file (JSON lines with question_id, image, text, category), or a
//     JSON array of LLaVA samples (id, image, conversations: the first human turn is the question)
//     or of question objects with question_id/id and text.
//
// The task's suffix is appended to a question that carries none (LLaVA's files already do). Errors
// name the file and line.
func LoadRunQuestions(task, path string, allRounds bool) ([]RunQuestion, error) {
	t, err := Lookup(task)
	if err != nil {
		return nil, err
	}
	var qs []RunQuestion
	switch {
	case t.Name == "mmbench" || t.Name == "mmbench_cn":
		qs, err = loadMMBenchQuestions(t, path, allRounds)
	case t.Name == "sqa" && isSQAProblems(path):
		qs, err = loadSQAProblems(t, path)
	default:
		qs, err = loadQuestionFile(t, path)
	}
	if err != nil {
		return nil, err
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%s: no questions", path)
	}
	finishQuestions(t.Name, qs)
	return qs, nil
}

func isSQAProblems(path string) bool {
	st, err := os.Stat(path)
	return err == nil && (st.IsDir() || filepath.Base(path) == "problems.json")
}

func loadSQAProblems(t *Task, path string) ([]RunQuestion, error) {
	refs, err := LoadSQARefs(path, "test")
	if err != nil {
		return nil, err
	}
	pp := filepath.Join(refs.Path, "problems.json")
	var qs []RunQuestion
	for _, id := range refs.IDs {
		p := refs.Problems[id]
		q := RunQuestion{ID: id, RawID: mustJSON(id), Text: SQAPrompt(p), Source: pp + " problem " + id}
		if p.Image != nil && *p.Image != "" {
			q.Image = filepath.Join(id, *p.Image)
		}
		qs = append(qs, q)
	}
	return qs, nil
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// loadQuestionFile reads a JSON-lines question file or a JSON array of samples / questions.
func loadQuestionFile(t *Task, path string) ([]RunQuestion, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var first [1]byte
	for {
		_, err := f.Read(first[:])
		if err != nil {
			f.Close()
			if err == io.EOF {
				return nil, fmt.Errorf("%s: empty question file", path)
			}
			return nil, err
		}
		if !isPySpace(rune(first[0])) && first[0] != 0xEF && first[0] != 0xBB && first[0] != 0xBF {
			break
		}
	}
	f.Close()
	var qs []RunQuestion
	if first[0] == '[' {
		doc, elems, offs, err := decodeArrayElems(path, "")
		if err != nil {
			return nil, err
		}
		for i, raw := range elems {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(raw, &obj); err != nil {
				return nil, doc.errAt(offs[i], "element %d is not a JSON object", i)
			}
			q, err := questionFromObject(t, obj)
			if err != nil {
				return nil, doc.errAt(offs[i], "%v", err)
			}
			q.Source = fmt.Sprintf("%s:%d", path, lineAt(doc.data, offs[i]))
			qs = append(qs, q)
		}
		return qs, nil
	}
	err = forEachJSONLine(path, func(line int, obj map[string]json.RawMessage) error {
		q, err := questionFromObject(t, obj)
		if err != nil {
			return lineError(path, line, "%v", err)
		}
		q.Source = fmt.Sprintf("%s:%d", path, line)
		qs = append(qs, q)
		return nil
	})
	return qs, err
}

// questionFromObject reads one question: question_id (or id), image, and text or conversations.
func questionFromObject(t *Task, obj map[string]json.RawMessage) (RunQuestion, error) {
	var q RunQuestion
	rawID, ok := obj["question_id"]
	if !ok {
		rawID = obj["id"]
	}
	id, ok := idString(rawID)
	if !ok {
		return q, errors.New("missing or invalid \"question_id\" (or \"id\")")
	}
	q.ID, q.RawID = id, json.RawMessage(bytes.TrimSpace(rawID))
	img, _, err := getString(obj, "image")
	if err != nil {
		return q, err
	}
	q.Image = img
	text, hasText, err := getString(obj, "text")
	if err != nil {
		return q, err
	}
	if !hasText {
		raw, ok := obj["conversations"]
		if !ok {
			return q, errors.New("no \"text\" or \"conversations\"")
		}
		var conv []struct {
			From  string `json:"from"`
			Value string `json:"value"`
		}
		if err := json.Unmarshal(raw, &conv); err != nil {
			return q, fmt.Errorf("\"conversations\" is not a list of {from, value} turns: %v", err)
		}
		found := false
		for _, c := range conv {
			if c.From == "human" {
				text, found = c.Value, true
				break
			}
		}
		if !found {
			return q, errors.New("\"conversations\" has no human turn")
		}
	}
	text = stripImageToken(text)
	if strings.TrimSpace(text) == "" {
		return q, errors.New("empty question text")
	}
	suffix := t.PromptSuffix
	if qt, _, _ := getString(obj, "question_type"); qt == "open" {
		suffix = SuffixShort // MMMU's open questions
	}
	q.Text = withSuffix(text, suffix)
	return q, nil
}

// loadMMBenchQuestions reads an MMBench TSV with its base64 images (a short image cell holding
// another row's index refers to that row's image, as VLMEvalKit's circular TSVs do).
func loadMMBenchQuestions(t *Task, path string, allRounds bool) ([]RunQuestion, error) {
	refs, err := LoadMMBenchTSV(path)
	if err != nil {
		return nil, err
	}
	images, err := readMMBenchImages(path)
	if err != nil {
		return nil, err
	}
	var qs []RunQuestion
	for i := range refs.Rows {
		row := &refs.Rows[i]
		img := images[row.Index]
		if len(img) < 64 {
			if ref, err := strconv.ParseInt(strings.TrimSpace(img), 10, 64); err == nil {
				img = images[ref]
			}
		}
		if img == "" {
			return nil, lineError(path, row.Line, "question %d has no image", row.Index)
		}
		dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(img))
		if err != nil {
			return nil, lineError(path, row.Line, "question %d: image is not base64: %v", row.Index, err)
		}
		rounds := 1
		if allRounds {
			rounds = len(row.Options)
		}
		for r := 0; r < rounds; r++ {
			id := strconv.FormatInt(row.Index, 10)
			q := RunQuestion{ID: id, RawID: json.RawMessage(id), ImageData: dec,
				Text: MMBenchPrompt(row, r, t.PromptSuffix), Source: fmt.Sprintf("%s:%d", path, row.Line)}
			if allRounds {
				q.Round, q.HasRound = r, true
			}
			qs = append(qs, q)
		}
	}
	return qs, nil
}

// readMMBenchImages returns the "image" column of an MMBench TSV by index.
func readMMBenchImages(path string) (map[int64]string, error) {
	f, r, col, err := openTSV(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ic, xc := -1, -1
	if i, ok := col["image"]; ok {
		ic = i
	}
	if i, ok := col["index"]; ok {
		xc = i
	}
	if ic < 0 {
		return nil, fmt.Errorf("%s:1: header has no \"image\" column (the images are needed to generate answers)", path)
	}
	out := map[int64]string{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if xc < len(rec) && ic < len(rec) {
			if idx, err := strconv.ParseInt(strings.TrimSpace(rec[xc]), 10, 64); err == nil {
				out[idx] = rec[ic]
			}
		}
	}
}

// ImagePath resolves a question's image file against the images folder.
func (q *RunQuestion) ImagePath(imagesDir string) string {
	if q.Image == "" || filepath.IsAbs(q.Image) {
		return q.Image
	}
	return filepath.Join(imagesDir, q.Image)
}

// CheckImages reports the first question whose image file is missing, naming the question.
func CheckImages(qs []RunQuestion, imagesDir string) error {
	for i := range qs {
		q := &qs[i]
		if q.Image == "" {
			continue
		}
		p := q.ImagePath(imagesDir)
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%s: image %s is missing: %v", q.Describe(), p, errors.Unwrap(err))
		}
		if st.IsDir() {
			return fmt.Errorf("%s: image %s is a directory", q.Describe(), p)
		}
	}
	return nil
}

// RunInput builds the model input of a question: the qwen2_base generation prompt of
// "<image>\n" + Text (Text alone without an image) and the preprocessed image.
func RunInput(v *vlm.VLM, q *RunQuestion, imagesDir string) (tinyllava.Input, error) {
	key := q.ID
	if q.ImageData == nil {
		in, err := v.PromptInput(key, q.ImagePath(imagesDir), q.Text)
		if err != nil {
			return in, fmt.Errorf("%s: %w", q.Describe(), err)
		}
		return in, nil
	}
	img, _, err := image.Decode(bytes.NewReader(q.ImageData))
	if err != nil {
		return tinyllava.Input{}, fmt.Errorf("%s: decoding the embedded image: %w", q.Describe(), err)
	}
	if b := img.Bounds(); b.Dx() <= 0 || b.Dy() <= 0 {
		return tinyllava.Input{}, fmt.Errorf("%s: the embedded image is empty", q.Describe())
	}
	px, err := data.Preprocess(img, v.PP)
	if err != nil {
		return tinyllava.Input{}, fmt.Errorf("%s: %w", q.Describe(), err)
	}
	prompt := data.GenerationPrompt(q.Text, true)
	return tinyllava.Input{ID: key, IDs: data.EncodePrompt(v.Tokenizer, prompt), Images: [][]float32{px}}, nil
}

// RunOptions configures RunQuestions.
type RunOptions struct {
	ImagesDir    string
	BatchSize    int // questions per generation batch (>= 1)
	MaxNewTokens int
	ModelID      string // the answers' model_id
	// Emit, when set, receives each batch's answers in question order as soon as it is done (to
	// append them to an answers file); an error stops the run.
	Emit func([]AnswerLine) error
	// Progress, when set, is called after each batch with the questions done so far.
	Progress func(done, total int)
}

// RunQuestions answers questions with greedy decoding, BatchSize at a time in question order
// (POPE's scorer pairs answers with labels by position), preparing the next batch's inputs while
// the current one generates. It returns the answers in question order.
func RunQuestions(v *vlm.VLM, qs []RunQuestion, o RunOptions) ([]AnswerLine, error) {
	if o.BatchSize < 1 {
		return nil, fmt.Errorf("eval: batch size %d < 1", o.BatchSize)
	}
	if o.MaxNewTokens < 1 {
		return nil, fmt.Errorf("eval: max new tokens %d < 1", o.MaxNewTokens)
	}
	type prepared struct {
		start int
		ins   []tinyllava.Input
		err   error
	}
	ch := make(chan prepared, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(ch)
		for start := 0; start < len(qs); start += o.BatchSize {
			p := prepared{start: start}
			for i := start; i < min(start+o.BatchSize, len(qs)); i++ {
				in, err := RunInput(v, &qs[i], o.ImagesDir)
				if err != nil {
					p.err = err
					break
				}
				p.ins = append(p.ins, in)
			}
			select {
			case ch <- p:
			case <-stop:
				return
			}
			if p.err != nil {
				return
			}
		}
	}()
	out := make([]AnswerLine, 0, len(qs))
	for p := range ch {
		if p.err != nil {
			return out, p.err
		}
		texts, ids, err := v.GenerateText(p.ins, tinyllava.GenerateOptions{MaxNewTokens: o.MaxNewTokens})
		if err != nil {
			return out, fmt.Errorf("generating answers for %s..: %w", qs[p.start].Describe(), err)
		}
		batch := make([]AnswerLine, len(texts))
		for j, text := range texts {
			q := &qs[p.start+j]
			batch[j] = AnswerLine{QuestionID: q.RawID, Prompt: q.Prompt, Text: pyStrip(text),
				AnswerID: NewAnswerID(), ModelID: o.ModelID, Metadata: map[string]any{}, Tokens: len(ids[j])}
			if q.HasRound {
				r := q.Round
				batch[j].RoundID = &r
			}
		}
		if o.Emit != nil {
			if err := o.Emit(batch); err != nil {
				return out, err
			}
		}
		out = append(out, batch...)
		if o.Progress != nil {
			o.Progress(len(out), len(qs))
		}
	}
	return out, nil
}

// NewAnswerID returns a random answer_id (LLaVA uses shortuuid; any unique string will do).
func NewAnswerID() string { return rand.Text() }

// PendingQuestions returns the questions that answers (an existing answers file of this run) does
// not answer yet, in order. The k-th answer with a given question_id (and round) answers the k-th
// question with it. It fails when the answers do not belong to these questions: an answer with no
// such question, more answers than questions for an id, a prompt that differs from the question's,
// or another model_id than modelID.
func PendingQuestions(qs []RunQuestion, answers []Answer, modelID string) ([]RunQuestion, error) {
	type key struct {
		id    string
		round int
	}
	byKey := map[key][]*Answer{}
	for i := range answers {
		a := &answers[i]
		if modelID != "" && a.ModelID != "" && a.ModelID != modelID {
			return nil, lineError(a.File, a.Line, "answer of model %q, not %q: use another output folder", a.ModelID, modelID)
		}
		k := key{a.QuestionID, a.RoundID}
		byKey[k] = append(byKey[k], a)
	}
	seen := map[key]int{}
	var pending []RunQuestion
	for i := range qs {
		q := &qs[i]
		k := key{q.ID, q.Round}
		seen[k]++
		as := byKey[k]
		if q.Occ >= len(as) {
			pending = append(pending, *q)
			continue
		}
		if a := as[q.Occ]; a.HasPrompt && a.Prompt != q.Prompt {
			return nil, lineError(a.File, a.Line, "the answer to %s has prompt %q but the question is %q: the answers come from another question file; use another output folder", q.Describe(), a.Prompt, q.Prompt)
		}
	}
	for k, as := range byKey {
		if len(as) > seen[k] {
			a := as[seen[k]]
			if seen[k] == 0 {
				return nil, lineError(a.File, a.Line, "question_id %s is not in the question file: use another output folder", a.QuestionID)
			}
			return nil, lineError(a.File, a.Line, "question_id %s is answered %d times but asked %d times", a.QuestionID, len(as), seen[k])
		}
	}
	return pending, nil
}

// RepairAnswersFile makes an append-only answers file safe to resume: a last line cut short by an
// interrupted write (no newline, not valid JSON) is removed, and a complete last line without a
// newline gets one. It reports what it did ("" when nothing). A missing file is not an error.
func RepairAnswersFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if len(b) == 0 || b[len(b)-1] == '\n' {
		return "", nil
	}
	cut := bytes.LastIndexByte(b, '\n') + 1
	tail := bytes.TrimSpace(b[cut:])
	if len(tail) == 0 || json.Valid(tail) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return "", err
		}
		_, err = f.Write([]byte{'\n'})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return "", err
	}
	if err := os.Truncate(path, int64(cut)); err != nil {
		return "", err
	}
	return fmt.Sprintf("removed an incomplete last line (%d bytes) from %s", len(b)-cut, path), nil
}
