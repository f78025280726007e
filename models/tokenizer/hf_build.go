package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// hfComponent is any normalizer, pre-tokenizer or decoder of a
// tokenizer.json: the union of the fields of the supported types.
type hfComponent struct {
	Type             string            `json:"type"`
	Normalizers      []json.RawMessage `json:"normalizers"`
	Pretokenizers    []json.RawMessage `json:"pretokenizers"`
	Decoders         []json.RawMessage `json:"decoders"`
	Prepend          string            `json:"prepend"`
	Pattern          *hfPattern        `json:"pattern"`
	Content          *string           `json:"content"`
	IndividualDigits bool              `json:"individual_digits"`
	AddPrefixSpace   bool              `json:"add_prefix_space"`
	UseRegex         *bool             `json:"use_regex"`
	Behavior         string            `json:"behavior"`
	Invert           bool              `json:"invert"`
	Replacement      *string           `json:"replacement"`
	PrependScheme    *string           `json:"prepend_scheme"`
	Split            *bool             `json:"split"`
	Start            int               `json:"start"`
	Stop             int               `json:"stop"`
}

type hfPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// isNull tells whether a component is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

func decodeComponent(raw json.RawMessage, field string) (*hfComponent, error) {
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return &c, nil
}

// buildHF checks f against what this package reproduces and builds the
// tokenizer; every refusal names the field.
func buildHF(f *hfFile) (*HF, error) {
	if !isNull(f.Truncation) {
		return nil, errors.New("truncation is not supported (must be null)")
	}
	if !isNull(f.Padding) {
		return nil, errors.New("padding is not supported (must be null)")
	}
	h := &HF{unk: -1, cache: make(map[string][]int32)}
	if err := h.buildModel(&f.Model); err != nil {
		return nil, err
	}
	if err := h.buildAdded(f.AddedTokens); err != nil {
		return nil, err
	}
	if !isNull(f.Normalizer) {
		if err := h.buildNormalizer(f.Normalizer, "normalizer"); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PreTokenizer) {
		if err := h.buildPreTokenizer(f.PreTokenizer, "pre_tokenizer"); err != nil {
			return nil, err
		}
	}
	if h.byteLevel {
		for b := range 256 {
			// A byte missing from the vocabulary (SmolLM2 lacks a few
			// control bytes) is an unknown character for bpe.
			id, ok := h.modelIDs[byteTok[b]]
			if !ok {
				id = -1
			}
			h.byteID[b] = id
		}
	}
	if !isNull(f.Decoder) {
		if err := h.buildDecoder(f.Decoder, "decoder"); err != nil {
			return nil, err
		}
	}
	if err := h.buildNormalizedAdded(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *HF) buildModel(m *hfModel) error {
	if m.Type != "BPE" {
		return fmt.Errorf("model.type %q is not supported (BPE)", m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return errors.New("model.dropout is not supported (must be null)")
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return errors.New("model.continuing_subword_prefix is not supported (must be null or empty)")
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return errors.New("model.end_of_word_suffix is not supported (must be null or empty)")
	}
	if len(m.Vocab) == 0 {
		return errors.New("model.vocab is empty")
	}
	h.modelIDs = make(map[string]int32, len(m.Vocab))
	maxID := int32(-1)
	for s, id := range m.Vocab {
		if id < 0 || id >= maxHFVocab {
			return fmt.Errorf("model.vocab: token %q has id %d out of range", truncate(s, 40), id)
		}
		h.modelIDs[s] = id
		maxID = max(maxID, id)
	}
	h.vocab = make([]string, maxID+1)
	for s, id := range m.Vocab {
		if h.vocab[id] != "" {
			return fmt.Errorf("model.vocab: id %d is given to both %q and %q", id, h.vocab[id], s)
		}
		h.vocab[id] = s
	}
	h.merges = make(map[uint64]mergeInfo, len(m.Merges))
	for i, raw := range m.Merges {
		a, b, err := parseMerge(raw)
		if err != nil {
			return fmt.Errorf("model.merges[%d]: %w", i, err)
		}
		ia, oka := h.modelIDs[a]
		ib, okb := h.modelIDs[b]
		ic, okc := h.modelIDs[a+b]
		if !oka || !okb || !okc {
			return fmt.Errorf("model.merges[%d]: %q %q: a part or the merged token is not in model.vocab", i, a, b)
		}
		// A repeated pair keeps its last rank, as HF's map does.
		h.merges[pairKey(ia, ib)] = mergeInfo{rank: int32(i), id: ic}
	}
	if m.UnkToken != nil {
		id, ok := h.modelIDs[*m.UnkToken]
		if !ok {
			return fmt.Errorf("model.unk_token %q is not in model.vocab", *m.UnkToken)
		}
		h.unk = id
	}
	h.fuseUnk = m.FuseUnk
	h.ignoreMerges = m.IgnoreMerges
	if m.ByteFallback {
		h.byteFallback = true
		for b := range 256 {
			id, ok := h.modelIDs[fmt.Sprintf("<0x%02X>", b)]
			if !ok {
				return fmt.Errorf("model.byte_fallback: model.vocab lacks <0x%02X>", b)
			}
			h.fallbackID[b] = id
		}
	}
	return nil
}

func (h *HF) buildAdded(tokens []addedToken) error {
	h.added = make(map[string]int32, len(tokens))
	h.addedInfo = make(map[int32]addedToken, len(tokens))
	// In id order, so that the splitter's tie-breaking does not depend on
	// map order (two tokens never have the same content anyway).
	tokens = slices.Clone(tokens)
	slices.SortFunc(tokens, func(a, b addedToken) int { return int(a.ID - b.ID) })
	for i, t := range tokens {
		field := fmt.Sprintf("added_tokens[%d] (%q)", i, t.Content)
		switch {
		case t.Content == "":
			return fmt.Errorf("%s: empty content", field)
		case t.ID < 0 || t.ID >= maxHFVocab:
			return fmt.Errorf("%s: id %d out of range", field, t.ID)
		case t.SingleWord:
			return fmt.Errorf("%s: single_word true is not supported", field)
		}
		if int(t.ID) >= len(h.vocab) {
			h.vocab = append(h.vocab, make([]string, int(t.ID)+1-len(h.vocab))...)
		}
		if v := h.vocab[t.ID]; v != "" && v != t.Content {
			return fmt.Errorf("%s: id %d is %q in model.vocab", field, t.ID, v)
		}
		h.vocab[t.ID] = t.Content
		h.added[t.Content] = t.ID
		h.addedInfo[t.ID] = t
		if t.Special {
			h.specials = append(h.specials, t.ID)
		}
		if t.Normalized {
			h.addedNormTokens = append(h.addedNormTokens, t)
		} else {
			h.rawSplitter.add(t.Content, t.ID)
		}
	}
	return nil
}

// buildNormalizedAdded matches the added tokens with normalized true in
// normalized text, under their normalized spelling (as HF's JS does).
func (h *HF) buildNormalizedAdded() error {
	for _, t := range h.addedNormTokens {
		c := h.normalize(t.Content)
		if c == "" {
			return fmt.Errorf("added_tokens: %q normalizes to nothing", t.Content)
		}
		h.added[c] = t.ID
		h.normSplitter.add(c, t.ID)
	}
	return nil
}

func (h *HF) buildNormalizer(raw json.RawMessage, field string) error {
	c, err := decodeComponent(raw, field)
	if err != nil {
		return err
	}
	switch c.Type {
	case "Sequence":
		for i, n := range c.Normalizers {
			if err := h.buildNormalizer(n, fmt.Sprintf("%s.normalizers[%d]", field, i)); err != nil {
				return err
			}
		}
	case "Prepend":
		p := c.Prepend
		h.normalizers = append(h.normalizers, func(s string) string { return p + s })
	case "Replace":
		from, err := stringPattern(c, field)
		if err != nil {
			return err
		}
		to := ""
		if c.Content != nil {
			to = *c.Content
		}
		h.normalizers = append(h.normalizers, func(s string) string { return strings.ReplaceAll(s, from, to) })
	case "NFC":
		h.normalizers = append(h.normalizers, norm.NFC.String)
	default:
		return fmt.Errorf("%s.type %q is not supported (Sequence, Prepend, Replace, NFC)", field, c.Type)
	}
	return nil
}

func stringPattern(c *hfComponent, field string) (string, error) {
	switch {
	case c.Pattern == nil:
		return "", fmt.Errorf("%s.pattern is missing", field)
	case c.Pattern.String == nil:
		return "", fmt.Errorf("%s.pattern: only {\"String\": ...} patterns are supported", field)
	case *c.Pattern.String == "":
		return "", fmt.Errorf("%s.pattern.String is empty", field)
	}
	return *c.Pattern.String, nil
}

// gpt2Pattern is GPT-2's pre-tokenization regex, accepted in a Split.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

func (h *HF) buildPreTokenizer(raw json.RawMessage, field string) error {
	c, err := decodeComponent(raw, field)
	if err != nil {
		return err
	}
	if h.byteLevel {
		// ByteLevel turns text into byte symbols: nothing may follow it.
		return fmt.Errorf("%s: follows a ByteLevel pre-tokenizer, which is supported only last", field)
	}
	switch c.Type {
	case "Sequence":
		for i, p := range c.Pretokenizers {
			if err := h.buildPreTokenizer(p, fmt.Sprintf("%s.pretokenizers[%d]", field, i)); err != nil {
				return err
			}
		}
	case "ByteLevel":
		h.byteLevel = true
		prefix := c.AddPrefixSpace
		regex := c.UseRegex == nil || *c.UseRegex
		h.preTokenizers = append(h.preTokenizers, func(s string, _ int, emit func(string)) {
			if prefix && !strings.HasPrefix(s, " ") {
				s = " " + s
			}
			if regex {
				splitGPT2JS(s, emit)
			} else if s != "" {
				emit(s)
			}
		})
	case "Digits":
		individual := c.IndividualDigits
		h.preTokenizers = append(h.preTokenizers, func(s string, _ int, emit func(string)) {
			splitDigitsJS(s, individual, emit)
		})
	case "Split":
		if c.Pattern == nil || c.Pattern.Regex == nil {
			return fmt.Errorf("%s.pattern: only the Qwen2 and GPT-2 {\"Regex\": ...} patterns are supported", field)
		}
		if c.Invert || c.Behavior != "Isolated" {
			return fmt.Errorf("%s: behavior %q, invert %v is not supported (Isolated, false)", field, c.Behavior, c.Invert)
		}
		var split func(string, func(string))
		switch *c.Pattern.Regex {
		case qwen2Pattern:
			split = splitQwen2
		case gpt2Pattern:
			split = splitGPT2JS
		default:
			return fmt.Errorf("%s.pattern.Regex %q is not supported (Qwen2's or GPT-2's pattern only)", field, truncate(*c.Pattern.Regex, 80))
		}
		h.preTokenizers = append(h.preTokenizers, func(s string, _ int, emit func(string)) { split(s, emit) })
	case "Metaspace":
		if c.Split != nil && *c.Split {
			return fmt.Errorf("%s: Metaspace with split true is not supported", field)
		}
		rep := "\u2581"
		if c.Replacement != nil {
			rep = *c.Replacement
		}
		scheme := "always"
		if c.PrependScheme != nil {
			scheme = *c.PrependScheme
		}
		if scheme != "always" && scheme != "first" && scheme != "never" {
			return fmt.Errorf("%s.prepend_scheme %q is not supported (always, first, never)", field, scheme)
		}
		h.preTokenizers = append(h.preTokenizers, func(s string, section int, emit func(string)) {
			s = strings.ReplaceAll(s, " ", rep)
			if !strings.HasPrefix(s, rep) && (scheme == "always" || scheme == "first" && section == 0) {
				s = rep + s
			}
			emit(s)
		})
	default:
		return fmt.Errorf("%s.type %q is not supported (Sequence, ByteLevel, Digits, Split, Metaspace)", field, c.Type)
	}
	return nil
}

func (h *HF) buildDecoder(raw json.RawMessage, field string) error {
	c, err := decodeComponent(raw, field)
	if err != nil {
		return err
	}
	switch c.Type {
	case "Sequence":
		for i, d := range c.Decoders {
			if err := h.buildDecoder(d, fmt.Sprintf("%s.decoders[%d]", field, i)); err != nil {
				return err
			}
		}
	case "ByteLevel":
		h.decoders = append(h.decoders, h.decodeByteLevel)
	case "Replace":
		from, err := stringPattern(c, field)
		if err != nil {
			return err
		}
		to := ""
		if c.Content != nil {
			to = *c.Content
		}
		h.decoders = append(h.decoders, func(toks []string) []string {
			for i, t := range toks {
				toks[i] = strings.ReplaceAll(t, from, to)
			}
			return toks
		})
	case "ByteFallback":
		h.decoders = append(h.decoders, decodeByteFallback)
	case "Fuse":
		h.decoders = append(h.decoders, func(toks []string) []string { return []string{strings.Join(toks, "")} })
	case "Strip":
		content := ""
		if c.Content != nil {
			content = *c.Content
		}
		if len([]rune(content)) != 1 {
			return fmt.Errorf("%s.content %q is not supported (one character)", field, content)
		}
		start, stop := c.Start, c.Stop
		h.decoders = append(h.decoders, func(toks []string) []string {
			for i, t := range toks {
				for n := 0; n < start && strings.HasPrefix(t, content); n++ {
					t = t[len(content):]
				}
				for n := 0; n < stop && strings.HasSuffix(t, content); n++ {
					t = t[:len(t)-len(content)]
				}
				toks[i] = t
			}
			return toks
		})
	case "Metaspace":
		rep := "\u2581"
		if c.Replacement != nil {
			rep = *c.Replacement
		}
		h.decoders = append(h.decoders, func(toks []string) []string {
			for i, t := range toks {
				t = strings.ReplaceAll(t, rep, " ")
				if i == 0 {
					t = strings.TrimPrefix(t, " ")
				}
				toks[i] = t
			}
			return toks
		})
	default:
		return fmt.Errorf("%s.type %q is not supported (Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace)", field, c.Type)
	}
	return nil
}

// maxHFVocab bounds token ids (real vocabularies have up to ~256k tokens)
// so that a hostile file cannot make LoadHF allocate gigabytes.
const maxHFVocab = 1 << 21
