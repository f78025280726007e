package hfconvert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/dpinstruct/dpinstruct/models/llama2c"
)

// spaceMark is SentencePiece's visible space, U+2581. llama2.c's export
// replaced it by " " in every piece; HF's vocabulary keeps it.
const spaceMark = "▁"

// The special tokens of a SentencePiece Llama vocabulary, by id.
const (
	unkToken = "<unk>"
	bosToken = "<s>"
	eosToken = "</s>"
)

// hfPieces returns the vocabulary as HF spells it: " " back to "▁", and the
// three specials by their SentencePiece names (llama2.c's export wrote
// BOS and EOS as "\n<s>\n" and "\n</s>\n" so run.c prints them on their
// own line). Pieces must be unique, as a HF vocab is a map.
func hfPieces(tok *llama2c.Tokenizer) ([]string, error) {
	if len(tok.Vocab) <= llama2c.EOS || len(tok.Scores) != len(tok.Vocab) {
		return nil, fmt.Errorf("hfconvert: tokenizer has %d pieces and %d scores; need the same count, more than %d", len(tok.Vocab), len(tok.Scores), llama2c.EOS)
	}
	pieces := make([]string, len(tok.Vocab))
	seen := make(map[string]int, len(pieces))
	for id, p := range tok.Vocab {
		switch id {
		case 0:
			p = unkToken
		case llama2c.BOS:
			p = bosToken
		case llama2c.EOS:
			p = eosToken
		default:
			p = strings.ReplaceAll(p, " ", spaceMark)
		}
		if p == "" {
			return nil, fmt.Errorf("hfconvert: tokenizer piece %d is empty", id)
		}
		if prev, dup := seen[p]; dup {
			return nil, fmt.Errorf("hfconvert: tokenizer pieces %d and %d are both %q", prev, id, p)
		}
		seen[p] = id
		pieces[id] = p
	}
	return pieces, nil
}

// merges derives BPE merges from the vocabulary and scores as HF's
// SentencePieceExtractor (transformers' LlamaConverter) does: every split
// of a piece into two vocabulary pieces, the splits of one piece ordered by
// (left id, right id), all of them stably sorted by the piece's score,
// highest first, so equal scores keep id order.
func merges(pieces []string, scores []float32) [][2]string {
	ids := make(map[string]int, len(pieces))
	for id, p := range pieces {
		ids[p] = id
	}
	type merge struct {
		l, r  string
		score float32
	}
	var all []merge
	for id, p := range pieces {
		var local []merge
		for i := range p { // i walks rune starts: HF splits characters
			if i == 0 {
				continue
			}
			l, rest := p[:i], p[i:]
			if _, ok := ids[l]; !ok {
				continue
			}
			if _, ok := ids[rest]; !ok {
				continue
			}
			local = append(local, merge{l, rest, scores[id]})
		}
		slices.SortStableFunc(local, func(a, b merge) int {
			if c := ids[a.l] - ids[b.l]; c != 0 {
				return c
			}
			return ids[a.r] - ids[b.r]
		})
		all = append(all, local...)
	}
	slices.SortStableFunc(all, func(a, b merge) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	out := make([][2]string, len(all))
	for i, m := range all {
		out[i] = [2]string{m.l, m.r}
	}
	return out
}

// orderedVocab marshals piece -> id in id order, as HF writes it (a Go map
// would sort the keys).
type orderedVocab []string

func (v orderedVocab) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for id, p := range v {
		if id > 0 {
			b.WriteByte(',')
		}
		k, err := marshalString(p)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		fmt.Fprintf(&b, ":%d", id)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalString is json.Marshal without HTML escaping ("<s>" stays
// readable).
func marshalString(s string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

type addedTokenJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type bpeModelJSON struct {
	Type                    string       `json:"type"`
	Dropout                 *float64     `json:"dropout"`
	UnkToken                string       `json:"unk_token"`
	ContinuingSubwordPrefix *string      `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string      `json:"end_of_word_suffix"`
	FuseUnk                 bool         `json:"fuse_unk"`
	ByteFallback            bool         `json:"byte_fallback"`
	IgnoreMerges            bool         `json:"ignore_merges"`
	Vocab                   orderedVocab `json:"vocab"`
	Merges                  [][2]string  `json:"merges"`
}

type tokenizerJSON struct {
	Version       string           `json:"version"`
	Truncation    any              `json:"truncation"`
	Padding       any              `json:"padding"`
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  any              `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         bpeModelJSON     `json:"model"`
}

// The pipeline of transformers' LlamaConverter (legacy, pre-Metaspace
// form): "▁" prepended and spaces replaced on normalization, no
// pre-tokenizer, BOS added by the post-processor, and the inverse on
// decoding (the Strip drops the prepended space).
const (
	llamaNormalizer = `{"type":"Sequence","normalizers":[` +
		`{"type":"Prepend","prepend":"▁"},` +
		`{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`
	llamaPostProcessor = `{"type":"TemplateProcessing",` +
		`"single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],` +
		`"pair":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},` +
		`{"SpecialToken":{"id":"<s>","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],` +
		`"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}}`
	llamaDecoder = `{"type":"Sequence","decoders":[` +
		`{"type":"Replace","pattern":{"String":"▁"},"content":" "},` +
		`{"type":"ByteFallback"},{"type":"Fuse"},` +
		`{"type":"Strip","content":" ","start":1,"stop":0}]}`
)

// hasByteTokens tells whether all 256 "<0xNN>" pieces are present, which
// byte_fallback needs.
func hasByteTokens(pieces []string) bool {
	set := make(map[string]bool, len(pieces))
	for _, p := range pieces {
		set[p] = true
	}
	for b := range 256 {
		if !set[fmt.Sprintf("<0x%02X>", b)] {
			return false
		}
	}
	return true
}

// TokenizerJSON returns the HF tokenizer.json of a llama2.c tokenizer.
func TokenizerJSON(tok *llama2c.Tokenizer) ([]byte, error) {
	pieces, err := hfPieces(tok)
	if err != nil {
		return nil, err
	}
	for id, p := range pieces {
		if !utf8.ValidString(p) {
			return nil, fmt.Errorf("hfconvert: tokenizer piece %d (%q) is not valid UTF-8; HF vocabularies are strings", id, p)
		}
	}
	added := make([]addedTokenJSON, 0, 3)
	for id, c := range []string{unkToken, bosToken, eosToken} {
		added = append(added, addedTokenJSON{ID: id, Content: c, Special: true})
	}
	f := tokenizerJSON{
		Version:       "1.0",
		AddedTokens:   added,
		Normalizer:    json.RawMessage(llamaNormalizer),
		PostProcessor: json.RawMessage(llamaPostProcessor),
		Decoder:       json.RawMessage(llamaDecoder),
		Model: bpeModelJSON{
			Type:         "BPE",
			UnkToken:     unkToken,
			FuseUnk:      true,
			ByteFallback: hasByteTokens(pieces),
			Vocab:        orderedVocab(pieces),
			Merges:       merges(pieces, tok.Scores),
		},
	}
	out, err := marshalJSON(f)
	if err != nil {
		return nil, fmt.Errorf("hfconvert: tokenizer.json: %w", err)
	}
	return out, nil
}

type tokenizerConfigJSON struct {
	AddBOSToken               bool   `json:"add_bos_token"`
	AddEOSToken               bool   `json:"add_eos_token"`
	BOSToken                  string `json:"bos_token"`
	EOSToken                  string `json:"eos_token"`
	UnkToken                  string `json:"unk_token"`
	PadToken                  any    `json:"pad_token"`
	CleanUpTokenizationSpaces bool   `json:"clean_up_tokenization_spaces"`
	Legacy                    bool   `json:"legacy"`
	ModelMaxLength            int    `json:"model_max_length"`
	TokenizerClass            string `json:"tokenizer_class"`
}

func tokenizerConfigFor(c llama2c.Config) tokenizerConfigJSON {
	return tokenizerConfigJSON{
		AddBOSToken:    true,
		BOSToken:       bosToken,
		EOSToken:       eosToken,
		UnkToken:       unkToken,
		Legacy:         true,
		ModelMaxLength: c.SeqLen,
		TokenizerClass: "LlamaTokenizer",
	}
}
