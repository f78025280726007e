package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// hfFile is the part of an HF tokenizer.json that LoadHF reads. The
// pipeline components stay raw: each is decoded by the step that builds
// it, so that an error can name the field.
type hfFile struct {
	Truncation   json.RawMessage `json:"truncation"`
	Padding      json.RawMessage `json:"padding"`
	AddedTokens  []addedToken    `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Decoder      json.RawMessage `json:"decoder"`
	Model        hfModel         `json:"model"`
}

type hfModel struct {
	Type                    string            `json:"type"`
	Dropout                 *float64          `json:"dropout"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Vocab                   map[string]int32  `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
}

// hfConfig is the part of tokenizer_config.json (and config.json) LoadHF
// reads. A special token there is a string or an AddedToken object.
type hfConfig struct {
	TokenizerClass       string                `json:"tokenizer_class"`
	BOSToken             json.RawMessage       `json:"bos_token"`
	EOSToken             json.RawMessage       `json:"eos_token"`
	AddedTokensDecoder   map[string]addedToken `json:"added_tokens_decoder"`
	BOSTokenID           json.RawMessage       `json:"bos_token_id"`
	EOSTokenID           json.RawMessage       `json:"eos_token_id"`
	hasBOSKey, hasEOSKey bool
}

// LoadHF reads a Hugging Face tokenizer from dir: tokenizer.json, or, when
// there is none, vocab.json + merges.txt with the tokenizer_class of
// tokenizer_config.json (Qwen2Tokenizer or GPT2Tokenizer). BOS and EOS come
// from tokenizer_config.json (bos_token, eos_token), or from config.json's
// bos_token_id / eos_token_id when tokenizer_config.json does not name
// them. See doc.go for what is supported.
func LoadHF(dir string) (*HF, error) {
	cfg, err := readHFConfig(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil, err
	}
	var f *hfFile
	src := filepath.Join(dir, "tokenizer.json") // what errors name
	data, err := os.ReadFile(src)
	switch {
	case err == nil:
		if f, err = parseHFJSON(data); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", src, err)
		}
	case errors.Is(err, os.ErrNotExist):
		src = dir + " (vocab.json + merges.txt)"
		if f, err = loadVocabMerges(dir, cfg); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", src, err)
		}
	default:
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	h, err := buildHF(f)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", src, err)
	}
	model, err := readHFConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	if h.bos, err = h.specialID(cfg, model, "bos"); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", dir, err)
	}
	if h.eos, err = h.specialID(cfg, model, "eos"); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", dir, err)
	}
	return h, nil
}

// readHFConfig reads a tokenizer_config.json or config.json; a missing
// file is an empty config.
func readHFConfig(path string) (*hfConfig, error) {
	c := &hfConfig{}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if err := parseHFConfig(data, c); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return c, nil
}

func parseHFConfig(data []byte, c *hfConfig) error {
	if err := json.Unmarshal(data, c); err != nil {
		return err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return err
	}
	_, c.hasBOSKey = keys["bos_token"]
	_, c.hasEOSKey = keys["eos_token"]
	return nil
}

// specialID resolves "bos" or "eos": tokenizer_config.json's token (null
// there means none), else config.json's id, else -1.
func (h *HF) specialID(cfg, model *hfConfig, which string) (int32, error) {
	tok, has, idRaw := cfg.BOSToken, cfg.hasBOSKey, model.BOSTokenID
	if which == "eos" {
		tok, has, idRaw = cfg.EOSToken, cfg.hasEOSKey, model.EOSTokenID
	}
	if has {
		content, err := tokenContent(tok)
		if err != nil {
			return -1, fmt.Errorf("tokenizer_config.json: %s_token: %w", which, err)
		}
		if content == "" {
			return -1, nil
		}
		id, ok := h.TokenID(content)
		if !ok {
			return -1, fmt.Errorf("tokenizer_config.json: %s_token %q is not in the vocabulary", which, content)
		}
		return id, nil
	}
	if len(idRaw) == 0 || string(idRaw) == "null" {
		return -1, nil
	}
	var id int32
	if err := json.Unmarshal(idRaw, &id); err != nil {
		// Some configs list several EOS ids; the first is the main one.
		var ids []int32
		if err2 := json.Unmarshal(idRaw, &ids); err2 != nil || len(ids) == 0 {
			return -1, fmt.Errorf("config.json: %s_token_id: %w", which, err)
		}
		id = ids[0]
	}
	if id < 0 || int(id) >= len(h.vocab) {
		return -1, fmt.Errorf("config.json: %s_token_id %d is out of the vocabulary", which, id)
	}
	return id, nil
}

// tokenContent reads a special token given as a string, an AddedToken
// object ({"content": ...}) or null ("").
func tokenContent(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("neither a string nor an object with content: %w", err)
	}
	return obj.Content, nil
}

func parseHFJSON(data []byte) (*hfFile, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// The pipeline HF's converter (transformers' Qwen2TokenizerFast, and
// GPT2TokenizerFast) builds around a vocab.json + merges.txt.
const (
	qwen2Normalizer   = `{"type":"NFC"}`
	qwen2PreTokenizer = `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":` +
		`"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},` +
		`"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]}`
	gpt2PreTokenizer = `{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}`
	byteLevelDecoder = `{"type":"ByteLevel"}`
)

// loadVocabMerges builds the tokenizer.json equivalent of a vocab.json +
// merges.txt tokenizer, with the added tokens of tokenizer_config.json.
func loadVocabMerges(dir string, cfg *hfConfig) (*hfFile, error) {
	f := &hfFile{Model: hfModel{Type: "BPE"}, Decoder: json.RawMessage(byteLevelDecoder)}
	switch cfg.TokenizerClass {
	case "Qwen2Tokenizer", "Qwen2TokenizerFast":
		f.Normalizer = json.RawMessage(qwen2Normalizer)
		f.PreTokenizer = json.RawMessage(qwen2PreTokenizer)
	case "GPT2Tokenizer", "GPT2TokenizerFast":
		f.PreTokenizer = json.RawMessage(gpt2PreTokenizer)
	default:
		return nil, fmt.Errorf("no tokenizer.json, and tokenizer_config.json: tokenizer_class %q is not supported with vocab.json + merges.txt (Qwen2Tokenizer, GPT2Tokenizer)", cfg.TokenizerClass)
	}
	data, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err != nil {
		return nil, err
	}
	if f.Model.Vocab, err = parseVocabJSON(data); err != nil {
		return nil, fmt.Errorf("vocab.json: %w", err)
	}
	data, err = os.ReadFile(filepath.Join(dir, "merges.txt"))
	if err != nil {
		return nil, err
	}
	merges, err := parseMergesTxt(data)
	if err != nil {
		return nil, fmt.Errorf("merges.txt: %w", err)
	}
	for _, m := range merges {
		raw, _ := json.Marshal(m[0] + " " + m[1])
		f.Model.Merges = append(f.Model.Merges, raw)
	}
	f.AddedTokens, err = addedFromConfig(cfg.AddedTokensDecoder)
	if err != nil {
		return nil, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	return f, nil
}

func parseVocabJSON(data []byte) (map[string]int32, error) {
	var v map[string]int32
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, errors.New("empty vocabulary")
	}
	return v, nil
}

// parseMergesTxt reads merges.txt: one "left right" pair a line, an
// optional "#version" first line, blank lines ignored.
func parseMergesTxt(data []byte) ([][2]string, error) {
	var out [][2]string
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || (n == 0 && strings.HasPrefix(line, "#version")) {
			continue
		}
		a, b, ok := strings.Cut(line, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("line %d: %q is not \"left right\"", n+1, line)
		}
		out = append(out, [2]string{a, b})
	}
	return out, nil
}

// addedFromConfig turns added_tokens_decoder ({"id": token}) into
// tokenizer.json's added_tokens.
func addedFromConfig(m map[string]addedToken) ([]addedToken, error) {
	out := make([]addedToken, 0, len(m))
	for k, t := range m {
		id, err := strconv.ParseInt(k, 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("added_tokens_decoder: key %q is not a token id", k)
		}
		t.ID = int32(id)
		out = append(out, t)
	}
	return out, nil
}

// parseMerge reads one merge of tokenizer.json: "a b" or ["a", "b"].
func parseMerge(raw json.RawMessage) (a, b string, err error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		a, b, ok := strings.Cut(s, " ")
		if !ok || strings.Contains(b, " ") {
			return "", "", fmt.Errorf("%q is not \"left right\"", s)
		}
		return a, b, nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return "", "", fmt.Errorf("%s is neither \"left right\" nor a [left, right] pair", truncate(string(raw), 60))
	}
	return pair[0], pair[1], nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
