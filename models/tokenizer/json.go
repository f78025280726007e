package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// The subset of HF's tokenizer.json this package writes and reads.

type addedToken struct {
	ID         int32  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type byteLevel struct {
	Type           string `json:"type"`
	AddPrefixSpace bool   `json:"add_prefix_space"`
	TrimOffsets    bool   `json:"trim_offsets"`
	UseRegex       bool   `json:"use_regex"`
}

// orderedVocab marshals as a JSON object in id order (as HF writes it).
type orderedVocab []string

func (v orderedVocab) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	out := []byte{'{'}
	first := true
	for id, s := range v {
		if s == "" {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		buf.Reset()
		if err := enc.Encode(s); err != nil {
			return nil, err
		}
		out = append(out, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
		out = append(out, ':')
		out = fmt.Appendf(out, "%d", id)
	}
	return append(out, '}'), nil
}

type bpeModelOut struct {
	Type                    string       `json:"type"`
	Dropout                 *float64     `json:"dropout"`
	UnkToken                *string      `json:"unk_token"`
	ContinuingSubwordPrefix *string      `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string      `json:"end_of_word_suffix"`
	FuseUnk                 bool         `json:"fuse_unk"`
	ByteFallback            bool         `json:"byte_fallback"`
	IgnoreMerges            bool         `json:"ignore_merges"`
	Vocab                   orderedVocab `json:"vocab"`
	Merges                  []string     `json:"merges"`
}

type fileOut struct {
	Version       string       `json:"version"`
	Truncation    any          `json:"truncation"`
	Padding       any          `json:"padding"`
	AddedTokens   []addedToken `json:"added_tokens"`
	Normalizer    any          `json:"normalizer"`
	PreTokenizer  byteLevel    `json:"pre_tokenizer"`
	PostProcessor byteLevel    `json:"post_processor"`
	Decoder       byteLevel    `json:"decoder"`
	Model         bpeModelOut  `json:"model"`
}

// Marshal returns the tokenizer as a HuggingFace tokenizer.json document
// (2-space indented, vocabulary in id order, merges as "left right"
// strings, which every version of HF tokenizers reads).
func (t *Tokenizer) Marshal() ([]byte, error) {
	f := fileOut{
		Version:       "1.0",
		PreTokenizer:  byteLevel{"ByteLevel", false, true, true},
		PostProcessor: byteLevel{"ByteLevel", true, false, true},
		Decoder:       byteLevel{"ByteLevel", true, true, true},
		AddedTokens:   []addedToken{},
		Model: bpeModelOut{
			Type:   "BPE",
			Merges: make([]string, len(t.mergeSeq)),
		},
	}
	vocab := make(orderedVocab, len(t.vocab))
	for id, v := range t.vocab {
		if t.special[id] {
			f.AddedTokens = append(f.AddedTokens, addedToken{ID: int32(id), Content: v, Special: true})
		}
		vocab[id] = v
	}
	f.Model.Vocab = vocab
	for i, m := range t.mergeSeq {
		f.Model.Merges[i] = t.vocab[m[0]] + " " + t.vocab[m[1]]
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return buf.Bytes(), nil
}

// Save writes the tokenizer to path as a HuggingFace tokenizer.json.
func (t *Tokenizer) Save(path string) error {
	b, err := t.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	return nil
}

type fileIn struct {
	AddedTokens  []addedToken    `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer *byteLevel      `json:"pre_tokenizer"`
	Decoder      json.RawMessage `json:"decoder"`
	Model        struct {
		Type                    string            `json:"type"`
		Dropout                 *float64          `json:"dropout"`
		ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
		ByteFallback            bool              `json:"byte_fallback"`
		IgnoreMerges            bool              `json:"ignore_merges"`
		Vocab                   map[string]int32  `json:"vocab"`
		Merges                  []json.RawMessage `json:"merges"`
	} `json:"model"`
}

// Load reads a HuggingFace tokenizer.json holding a byte-level BPE model
// (one written by Save, or GPT-2's as HF ships it). Merges may be "a b"
// strings or ["a", "b"] pairs. It refuses what this package would encode
// differently from HF: a normalizer, a pre-tokenizer other than ByteLevel
// with use_regex and no prefix space, subword prefixes/suffixes, dropout,
// byte fallback, ignore_merges, or a vocabulary missing a byte token.
func Load(path string) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// Unmarshal parses a tokenizer.json document; see Load.
func Unmarshal(data []byte) (*Tokenizer, error) {
	var f fileIn
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	m := &f.Model
	switch {
	case m.Type != "BPE":
		return nil, fmt.Errorf("model type %q, want BPE", m.Type)
	case len(f.Normalizer) > 0 && string(f.Normalizer) != "null":
		return nil, fmt.Errorf("normalizers are not supported")
	case f.PreTokenizer == nil || f.PreTokenizer.Type != "ByteLevel":
		return nil, fmt.Errorf("pre_tokenizer must be ByteLevel")
	case f.PreTokenizer.AddPrefixSpace || !f.PreTokenizer.UseRegex:
		return nil, fmt.Errorf("ByteLevel pre_tokenizer must have add_prefix_space false and use_regex true")
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, fmt.Errorf("BPE dropout is not supported")
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "",
		m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, fmt.Errorf("subword prefixes/suffixes are not supported")
	case m.ByteFallback || m.IgnoreMerges:
		return nil, fmt.Errorf("byte_fallback and ignore_merges are not supported")
	}
	size := int32(0)
	for _, id := range m.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("negative id %d", id)
		}
		size = max(size, id+1)
	}
	for _, a := range f.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("negative id %d", a.ID)
		}
		size = max(size, a.ID+1)
	}
	t := &Tokenizer{
		vocab:   make([]string, size),
		raw:     make([]string, size),
		special: make([]bool, size),
		merges:  make(map[uint64]mergeInfo, len(m.Merges)),
	}
	added := make(map[int32]string, len(f.AddedTokens))
	for _, a := range f.AddedTokens {
		added[a.ID] = a.Content
	}
	for tok, id := range m.Vocab {
		if t.vocab[id] != "" {
			return nil, fmt.Errorf("id %d given to both %q and %q", id, t.vocab[id], tok)
		}
		if c, ok := added[id]; ok && c == tok {
			t.vocab[id] = tok // a special listed in the vocab too (set below)
			continue
		}
		raw, ok := fromVocab(tok)
		if !ok || tok == "" {
			return nil, fmt.Errorf("vocabulary entry %q is not byte-level", tok)
		}
		t.vocab[id], t.raw[id] = tok, string(raw)
	}
	for _, a := range f.AddedTokens {
		if v := t.vocab[a.ID]; v != "" && v != a.Content {
			return nil, fmt.Errorf("added token %q has the id %d of %q", a.Content, a.ID, v)
		}
		if a.Content == "" {
			return nil, fmt.Errorf("empty added token (id %d)", a.ID)
		}
		t.vocab[a.ID], t.raw[a.ID], t.special[a.ID] = a.Content, a.Content, true
	}
	for b := 0; b < 256; b++ {
		if id, ok := m.Vocab[byteTok[b]]; !ok || t.special[id] {
			return nil, fmt.Errorf("vocabulary lacks the byte token %q (byte 0x%02x): not a byte-level vocabulary", byteTok[b], b)
		}
	}
	for rank, raw := range m.Merges {
		var l, r string
		var s string
		var pair []string
		if err := json.Unmarshal(raw, &s); err == nil {
			var ok bool
			if l, r, ok = strings.Cut(s, " "); !ok || strings.Contains(r, " ") {
				return nil, fmt.Errorf("merge %d %q: want \"left right\"", rank, s)
			}
		} else if err := json.Unmarshal(raw, &pair); err == nil && len(pair) == 2 {
			l, r = pair[0], pair[1]
		} else {
			return nil, fmt.Errorf("merge %d: %s is neither \"a b\" nor [\"a\", \"b\"]", rank, raw)
		}
		a, okA := m.Vocab[l]
		b, okB := m.Vocab[r]
		n, okN := m.Vocab[l+r]
		if !okA || !okB || !okN {
			return nil, fmt.Errorf("merge %d (%q, %q): token missing from the vocabulary", rank, l, r)
		}
		// A repeated merge takes its last rank, as in HF (a map collect).
		t.merges[pairKey(a, b)] = mergeInfo{int32(rank), n}
		t.mergeSeq = append(t.mergeSeq, [2]int32{a, b})
	}
	t.finish()
	return t, nil
}
