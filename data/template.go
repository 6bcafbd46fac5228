package data

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Encoder turns text into token ids. It must behave like a Hugging Face tokenizer call
// `tokenizer(text).input_ids`: special tokens written in the text (e.g. "<|endoftext|>") map to their
// ids, and whatever the tokenizer adds by default (a BOS for Llama-style tokenizers, nothing for
// Qwen2) is included.
type Encoder interface {
	Encode(text string) []int
}

// SpecialTokens are the ids TinyLLaVA's tokenizer_image_token and make_labels consult. Use -1 for
// "none".
type SpecialTokens struct {
	BOS int // bos_token_id: when the first chunk starts with it, TinyLLaVA drops the first token of every chunk and keeps one BOS
	EOS int // eos_token_id
	Pad int // pad_token_id
}

// SpecialTokenser is optionally implemented by an Encoder to provide its special ids. Encoders that
// don't implement it get DefaultSpecialTokens.
type SpecialTokenser interface {
	SpecialTokens() SpecialTokens
}

// DefaultSpecialTokens is the Qwen2 / TinyLLaVA setting: no BOS, and pad = eos = the id
// "<|endoftext|>" encodes to (when it encodes to exactly one id; otherwise -1).
func DefaultSpecialTokens(enc Encoder) SpecialTokens {
	st := SpecialTokens{BOS: -1, EOS: -1, Pad: -1}
	if ids := enc.Encode(EOSText); len(ids) == 1 {
		st.EOS, st.Pad = ids[0], ids[0]
	}
	return st
}

func specialTokensOf(enc Encoder) SpecialTokens {
	if s, ok := enc.(SpecialTokenser); ok {
		return s.SpecialTokens()
	}
	return DefaultSpecialTokens(enc)
}

// The qwen2_base template of TinyLLaVA Factory.
const (
	// SystemPrompt is the template's system message, followed by one space in the prompt.
	SystemPrompt = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions."
	// EOSText ends every answer and is the generation stop string.
	EOSText = "<|endoftext|>"
	// AssistantSeparator splits a round into instruction and answer (separator[0]).
	AssistantSeparator = " ASSISTANT: "

	userPrefix      = "USER: "
	assistantPrefix = "ASSISTANT: "
)

// Turn is one message of a LLaVA conversation.
type Turn struct {
	From  string `json:"from"`
	Value string `json:"value"`
}

// Encoded is a tokenised training conversation.
type Encoded struct {
	ID       string
	InputIDs []int // token ids; ImageTokenIndex (-200) where image features are spliced in
	Labels   []int // same length; IgnoreIndex (-100) where not supervised
	// HasImageToken reports whether InputIDs contains ImageTokenIndex.
	HasImageToken bool
	// Warning is non-empty when TinyLLaVA's length check failed ("tokenization mismatch") and, as
	// TinyLLaVA does, every label was set to IgnoreIndex. Callers may log it.
	Warning string
}

// splitQA reproduces TinyLLaVA's _get_list_from_message: a first turn that is not from "human" is
// dropped, then turns alternate question/answer by position. On top of that it checks the roles
// ("human" then "gpt") and that every question has an answer, returning an error naming the turn.
func splitQA(conv []Turn) (questions, answers []string, err error) {
	if len(conv) == 0 {
		return nil, nil, errors.New("empty conversation")
	}
	start := 0
	if conv[0].From != "human" {
		start = 1
	}
	for i := start; i < len(conv); i++ {
		want := "human"
		if (i-start)%2 == 1 {
			want = "gpt"
		}
		if conv[i].From != want {
			return nil, nil, fmt.Errorf("turn %d: from %q, want %q (turns must alternate human/gpt)", i, conv[i].From, want)
		}
		if want == "human" {
			questions = append(questions, conv[i].Value)
		} else {
			answers = append(answers, conv[i].Value)
		}
	}
	if len(questions) == 0 {
		return nil, nil, errors.New("no human/gpt round")
	}
	if len(questions) != len(answers) {
		return nil, nil, fmt.Errorf("%d questions but %d answers (the last human turn has no gpt answer)", len(questions), len(answers))
	}
	return questions, answers, nil
}

// pyStrip is Python's str.strip() (Unicode whitespace, including U+001C..U+001F).
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) })
}

// formatQuestion applies the template to a question: if it mentions "<image>", every occurrence is
// removed, the rest stripped, and "<image>\n" put in front (then stripped again, as TinyLLaVA does).
func formatQuestion(q string) string {
	if strings.Contains(q, ImageToken) {
		q = pyStrip(strings.ReplaceAll(q, ImageToken, ""))
		q = pyStrip(ImageToken + "\n" + q)
	}
	return userPrefix + q + " "
}

// ConversationPrompt is the training prompt of the qwen2_base template:
// SYSTEM + " " + for each round "USER: {q} ASSISTANT: {a}<|endoftext|>".
func ConversationPrompt(questions, answers []string) string {
	var b strings.Builder
	for i := range questions {
		if i == 0 {
			b.WriteString(SystemPrompt + " ")
		}
		b.WriteString(formatQuestion(questions[i]))
		b.WriteString(assistantPrefix + answers[i] + EOSText)
	}
	return b.String()
}

// GenerationPrompt is the eval-mode prompt for one question: with hasImage, "<image>\n" is put in
// front of the question as TinyLLaVA's eval scripts do (and the template then normalises it). The
// prompt ends with "ASSISTANT:" and no trailing space. A question that itself contains "<image>"
// gets the image placeholder even when hasImage is false (the template sees it).
func GenerationPrompt(question string, hasImage bool) string {
	if hasImage {
		question = ImageToken + "\n" + question
	}
	return SystemPrompt + " " + formatQuestion(question) + strings.TrimSuffix(assistantPrefix, " ")
}

// EncodePrompt tokenises a prompt like TinyLLaVA's tokenizer_image_token: the prompt is split on
// "<image>", each chunk encoded separately, and ImageTokenIndex inserted between chunks.
func EncodePrompt(enc Encoder, prompt string) []int {
	return tokenizerImageToken(enc, prompt, specialTokensOf(enc).BOS)
}

func tokenizerImageToken(enc Encoder, prompt string, bos int) []int {
	texts := strings.Split(prompt, ImageToken)
	chunks := make([][]int, len(texts))
	for i, t := range texts {
		chunks[i] = enc.Encode(t)
	}
	var ids []int
	offset := 0
	if len(chunks) > 0 && len(chunks[0]) > 0 && bos >= 0 && chunks[0][0] == bos {
		offset = 1
		ids = append(ids, chunks[0][0])
	}
	for i, c := range chunks {
		if i > 0 {
			// the separator is [IMAGE]*(offset+1) and also loses its first `offset` elements
			ids = append(ids, ImageTokenIndex)
		}
		if offset < len(c) {
			ids = append(ids, c[offset:]...)
		}
	}
	return ids
}

// EncodeConversation tokenises a LLaVA conversation with the qwen2_base template and builds the
// labels exactly as TinyLLaVA's Template.make_labels / _make_masks:
//   - rounds = prompt split on "<|endoftext|>"; for each non-empty round with exactly one
//     " ASSISTANT: ": round_len = len(tok(round)) + len(tok("<|endoftext|>")),
//     instruction_len = len(tok(instruction + " ASSISTANT: ")) - 1 (the trailing space usually merges
//     into the answer's first token), labels[cur : cur+instruction_len] = -100, cur += round_len;
//     a round without exactly one separator stops the loop; everything from cur on is masked;
//   - total_len = number of ids different from the pad id, plus the number of "<|endoftext|>" in the
//     prompt when pad id == eos id; if cur < maxLen and cur != total_len all labels become -100 and
//     Encoded.Warning says so.
//
// maxLen is tokenizer_model_max_length, used only for that check: the ids are NOT truncated here
// (TinyLLaVA truncates after splicing in the image features). Special ids come from the Encoder when
// it implements SpecialTokenser, DefaultSpecialTokens otherwise.
func EncodeConversation(enc Encoder, conv []Turn, maxLen int) (Encoded, error) {
	return EncodeConversationWith(enc, conv, maxLen, specialTokensOf(enc))
}

// EncodeConversationWith is EncodeConversation with explicit special token ids.
func EncodeConversationWith(enc Encoder, conv []Turn, maxLen int, st SpecialTokens) (Encoded, error) {
	questions, answers, err := splitQA(conv)
	if err != nil {
		return Encoded{}, err
	}
	prompt := ConversationPrompt(questions, answers)
	ids := tokenizerImageToken(enc, prompt, st.BOS)
	labels := append([]int(nil), ids...)

	totalLen := 0
	for _, id := range ids {
		if st.Pad < 0 || id != st.Pad {
			totalLen++
		}
	}
	if st.Pad >= 0 && st.Pad == st.EOS {
		totalLen += strings.Count(prompt, EOSText)
	}
	eosLen := len(enc.Encode(EOSText))
	curLen := 0
	for _, rou := range strings.Split(prompt, EOSText) {
		if rou == "" {
			break
		}
		parts := strings.Split(rou, AssistantSeparator)
		if len(parts) != 2 {
			break
		}
		roundLen := len(tokenizerImageToken(enc, rou, st.BOS)) + eosLen
		instructionLen := len(tokenizerImageToken(enc, parts[0]+AssistantSeparator, st.BOS)) - 1
		pySliceFill(labels, curLen, curLen+instructionLen, IgnoreIndex)
		curLen += roundLen
	}
	pySliceFill(labels, curLen, len(labels), IgnoreIndex)

	out := Encoded{InputIDs: ids, Labels: labels}
	if curLen < maxLen && curLen != totalLen {
		out.Warning = fmt.Sprintf("tokenization mismatch: %d vs. %d (all labels ignored)", curLen, totalLen)
		for i := range labels {
			labels[i] = IgnoreIndex
		}
	}
	for _, id := range ids {
		if id == ImageTokenIndex {
			out.HasImageToken = true
			break
		}
	}
	return out, nil
}

// pySliceFill does s[start:stop] = v with Python slice semantics (negative indices count from the end,
// out-of-range indices are clamped).
func pySliceFill(s []int, start, stop, v int) {
	n := len(s)
	norm := func(i int) int {
		if i < 0 {
			i += n
			if i < 0 {
				i = 0
			}
		}
		return min(i, n)
	}
	start, stop = norm(start), norm(stop)
	for i := start; i < stop; i++ {
		s[i] = v
	}
}
