package vlm

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// eosToken reads eos_token from tokenizer_config.json (a string or {"content": ...}).
func eosToken(dir string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return "", false
	}
	var cfg struct {
		EOS json.RawMessage `json:"eos_token"`
	}
	if json.Unmarshal(b, &cfg) != nil || len(cfg.EOS) == 0 {
		return "", false
	}
	var s string
	if json.Unmarshal(cfg.EOS, &s) == nil {
		return s, s != ""
	}
	var obj struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(cfg.EOS, &obj) == nil {
		return obj.Content, obj.Content != ""
	}
	return "", false
}
