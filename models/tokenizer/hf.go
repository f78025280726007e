package tokenizer

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// HF is a Hugging Face BPE tokenizer read by LoadHF: byte-level (GPT-2,
// SmolLM2, Qwen2) or SentencePiece-style with byte fallback (Llama 2,
// Mistral). It encodes as HF's JavaScript tokenizers do with
// add_special_tokens false, and is safe for concurrent use.
type HF struct {
	vocab     []string         // id -> token string (added tokens: their content); "" for unused ids
	modelIDs  map[string]int32 // model.vocab
	added     map[string]int32 // added token content (and normalized content) -> id
	addedInfo map[int32]addedToken
	specials  []int32

	rawSplitter     addedSplitter // added tokens matched in raw text
	normSplitter    addedSplitter // added tokens with normalized true, matched after normalization
	addedNormTokens []addedToken

	normalizers   []func(string) string
	preTokenizers []func(s string, section int, emit func(string))
	decoders      []func([]string) []string

	byteLevel    bool       // pieces are bytes spelled with ByteLevel's alphabet
	byteID       [256]int32 // byte -> ByteLevel token id (byteLevel only)
	merges       map[uint64]mergeInfo
	byteFallback bool
	fallbackID   [256]int32 // byte -> id of <0xNN>
	unk          int32      // -1: none
	fuseUnk      bool
	ignoreMerges bool

	bos, eos int32

	mu    sync.Mutex
	cache map[string][]int32
}

// VocabSize is one more than the largest id (model and added tokens).
func (h *HF) VocabSize() int { return len(h.vocab) }

// BOS is the beginning-of-sequence id, or -1 if there is none.
func (h *HF) BOS() int32 { return h.bos }

// EOS is the end-of-sequence id, or -1 if there is none.
func (h *HF) EOS() int32 { return h.eos }

// Specials returns the ids of the added tokens marked special, in id order.
func (h *HF) Specials() []int32 { return append([]int32(nil), h.specials...) }

// IsSpecial tells whether id is an added token marked special.
func (h *HF) IsSpecial(id int32) bool {
	t, ok := h.addedInfo[id]
	return ok && t.Special
}

// TokenString returns the token as spelled in the vocabulary (ByteLevel or
// "▁" spelling; an added token's content), "" for an unknown id.
func (h *HF) TokenString(id int32) string {
	if id < 0 || int(id) >= len(h.vocab) {
		return ""
	}
	return h.vocab[id]
}

// TokenID returns the id of a token spelled as TokenString spells it (an
// added token by its content).
func (h *HF) TokenID(tok string) (int32, bool) {
	if id, ok := h.added[tok]; ok {
		return id, true
	}
	id, ok := h.modelIDs[tok]
	return id, ok
}

// Encode returns the ids of text, adding no BOS/EOS; added tokens written
// literally in text are split out as their ids.
func (h *HF) Encode(text string) []int32 {
	return h.AppendEncode(make([]int32, 0, len(text)/3+1), text)
}

// AppendEncode appends the ids of text to dst.
func (h *HF) AppendEncode(dst []int32, text string) []int32 {
	segs := h.rawSplitter.split(text)
	stripAround(segs, h.addedInfo)
	for section, seg := range segs {
		if seg.id >= 0 {
			dst = append(dst, seg.id)
			continue
		}
		s := seg.text
		if s == "" {
			continue
		}
		s = h.normalize(s)
		if s == "" {
			continue
		}
		subs := h.normSplitter.split(s)
		stripAround(subs, h.addedInfo)
		for _, sub := range subs {
			if sub.id >= 0 {
				dst = append(dst, sub.id)
				continue
			}
			if sub.text == "" {
				continue
			}
			h.preTokenize(sub.text, section, func(piece string) {
				dst = h.appendPiece(dst, piece)
			})
		}
	}
	return dst
}

func (h *HF) normalize(s string) string {
	for _, n := range h.normalizers {
		s = n(s)
	}
	return s
}

// preTokenize runs the pre-tokenizers in sequence, each on every piece of
// the one before, and emits the final pieces.
func (h *HF) preTokenize(s string, section int, emit func(string)) {
	var run func(s string, k int)
	run = func(s string, k int) {
		if s == "" {
			return
		}
		if k == len(h.preTokenizers) {
			emit(s)
			return
		}
		h.preTokenizers[k](s, section, func(p string) { run(p, k+1) })
	}
	run(s, 0)
}

// appendPiece appends the BPE ids of one pre-token, through the cache.
func (h *HF) appendPiece(dst []int32, piece string) []int32 {
	h.mu.Lock()
	ids, ok := h.cache[piece]
	h.mu.Unlock()
	if ok {
		return append(dst, ids...)
	}
	ids = h.bpe(piece)
	if len(piece) <= 256 { // long pieces (Mistral's whole texts) are rarely repeated
		h.mu.Lock()
		if len(h.cache) >= maxCache {
			clear(h.cache)
		}
		h.cache[strings.Clone(piece)] = ids
		h.mu.Unlock()
	}
	return append(dst, ids...)
}

// bpe encodes one pre-token. A character outside the vocabulary becomes a
// placeholder symbol (a negative id, which no merge matches, as in HF's
// JS, where such a character stays a lone symbol), then its UTF-8 bytes'
// <0xNN> tokens with byte_fallback, else unk, else nothing. Invalid UTF-8
// (which HF never sees) counts as one such character per byte. Byte-level
// pieces are bytes, each spelled as one ByteLevel character.
func (h *HF) bpe(piece string) []int32 {
	if h.byteLevel {
		if h.ignoreMerges {
			if id, ok := h.modelIDs[toVocab([]byte(piece))]; ok {
				return []int32{id}
			}
		}
	} else if h.ignoreMerges {
		if id, ok := h.modelIDs[piece]; ok {
			return []int32{id}
		}
	}
	sym := make([]int32, 0, len(piece))
	var unknown []string
	for i := 0; h.byteLevel && i < len(piece); i++ {
		id := h.byteID[piece[i]]
		if id < 0 {
			unknown = append(unknown, byteTok[piece[i]])
			id = -int32(len(unknown)) - 1
		}
		sym = append(sym, id)
	}
	for i := 0; !h.byteLevel && i < len(piece); {
		_, w := utf8.DecodeRuneInString(piece[i:])
		ch := piece[i : i+w]
		if id, ok := h.modelIDs[ch]; ok {
			sym = append(sym, id)
		} else {
			unknown = append(unknown, ch)
			sym = append(sym, -int32(len(unknown))-1)
		}
		i += w
	}
	sym = applyMerges(h.merges, sym)
	if unknown == nil {
		return sym
	}
	out := make([]int32, 0, len(sym)+4*len(unknown))
	for _, id := range sym {
		if id >= 0 {
			out = append(out, id)
			continue
		}
		ch := unknown[-id-2]
		switch {
		case h.byteFallback:
			for j := 0; j < len(ch); j++ {
				out = append(out, h.fallbackID[ch[j]])
			}
		case h.unk >= 0:
			if h.fuseUnk && len(out) > 0 && out[len(out)-1] == h.unk {
				continue
			}
			out = append(out, h.unk)
		}
	}
	return out
}

// Decode turns ids into text as HF's JS decode does with
// skip_special_tokens and clean_up_tokenization_spaces false: added tokens
// are their content, the decoder pipeline applies, and bytes that are not
// UTF-8 become U+FFFD. Ids out of range are skipped.
func (h *HF) Decode(ids []int32) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && int(id) < len(h.vocab) && h.vocab[id] != "" {
			toks = append(toks, h.vocab[id])
		}
	}
	if len(h.decoders) == 0 {
		return strings.Join(toks, " ")
	}
	for _, d := range h.decoders {
		toks = d(toks)
	}
	return strings.Join(toks, "")
}

// decodeByteLevel maps runs of model tokens from ByteLevel spelling back to
// bytes; added tokens pass as they are.
func (h *HF) decodeByteLevel(toks []string) []string {
	var out []string
	var buf []byte
	flush := func() {
		if buf != nil {
			out = append(out, lossyUTF8(buf))
			buf = nil
		}
	}
	for _, t := range toks {
		if _, ok := h.added[t]; ok {
			flush()
			out = append(out, t)
			continue
		}
		if buf == nil {
			buf = []byte{}
		}
		for _, r := range t {
			buf = append(buf, charByte[r]) // a character outside the alphabet is 0, as in HF's JS
		}
	}
	flush()
	return out
}

// decodeByteFallback turns runs of <0xNN> tokens into text.
func decodeByteFallback(toks []string) []string {
	var out []string
	var buf []byte
	for _, t := range toks {
		if b, ok := fallbackByte(t); ok {
			buf = append(buf, b)
			continue
		}
		if len(buf) > 0 {
			out = append(out, lossyUTF8(buf))
			buf = buf[:0]
		}
		out = append(out, t)
	}
	if len(buf) > 0 {
		out = append(out, lossyUTF8(buf))
	}
	return out
}

// fallbackByte parses "<0xNN>" as HF's JS does (parseInt of the two
// characters in base 16, which reads a leading hex digit alone).
func fallbackByte(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	hi, ok := hexVal(t[3])
	if !ok {
		return 0, false
	}
	if lo, ok := hexVal(t[4]); ok {
		return hi<<4 | lo, true
	}
	return hi, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// lossyUTF8 decodes b as the WHATWG TextDecoder does: each maximal
// ill-formed subsequence becomes one U+FFFD.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		r, w := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || w > 1 {
			sb.Write(b[i : i+w])
			i += w
			continue
		}
		sb.WriteRune(utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return sb.String()
}

// maximalSubpart is the length of the ill-formed sequence at the start of
// b that one U+FFFD replaces: a valid lead byte and the continuation bytes
// that could still follow it, else one byte.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c >= 0xE0 && c <= 0xEF:
		need = 2
		if c == 0xE0 {
			lo = 0xA0
		} else if c == 0xED {
			hi = 0x9F
		}
	case c >= 0xF0 && c <= 0xF4:
		need = 3
		if c == 0xF0 {
			lo = 0x90
		} else if c == 0xF4 {
			hi = 0x8F
		}
	default:
		return 1
	}
	n := 1
	for k := 1; k <= need && k < len(b); k++ {
		if b[k] < lo || b[k] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
		n++
	}
	return n
}

// segment is a piece of text, or an added token (id >= 0).
type segment struct {
	text string
	id   int32
}

// addedSplitter finds added tokens in text: at each position the longest
// token starting there, leftmost first (HF's JS trie, and HF's
// Aho-Corasick leftmost-longest).
type addedSplitter struct {
	byFirst [256][]int // first byte -> indexes into toks, longest first
	toks    []string
	ids     []int32
}

func (s *addedSplitter) add(tok string, id int32) {
	s.toks = append(s.toks, tok)
	s.ids = append(s.ids, id)
	k := len(s.toks) - 1
	l := s.byFirst[tok[0]]
	at := len(l)
	for j, o := range l {
		if len(s.toks[o]) < len(tok) {
			at = j
			break
		}
	}
	s.byFirst[tok[0]] = append(l[:at], append([]int{k}, l[at:]...)...)
}

func (s *addedSplitter) split(text string) []segment {
	if len(s.toks) == 0 {
		return []segment{{text: text, id: -1}}
	}
	var out []segment
	start := 0
	for i := 0; i < len(text); {
		matched := -1
		for _, k := range s.byFirst[text[i]] {
			if strings.HasPrefix(text[i:], s.toks[k]) {
				matched = k
				break
			}
		}
		if matched < 0 {
			i++
			continue
		}
		if i > start {
			out = append(out, segment{text: text[start:i], id: -1})
		}
		out = append(out, segment{text: s.toks[matched], id: s.ids[matched]})
		i += len(s.toks[matched])
		start = i
	}
	if start < len(text) || len(out) == 0 {
		out = append(out, segment{text: text[start:], id: -1})
	}
	return out
}

// stripAround applies the lstrip/rstrip flags of added tokens: the text
// before (after) such a token loses its trailing (leading) whitespace.
func stripAround(segs []segment, info map[int32]addedToken) {
	for i, sg := range segs {
		if sg.id < 0 {
			continue
		}
		t := info[sg.id]
		if t.Lstrip && i > 0 && segs[i-1].id < 0 {
			segs[i-1].text = strings.TrimRightFunc(segs[i-1].text, jsSpace)
		}
		if t.Rstrip && i+1 < len(segs) && segs[i+1].id < 0 {
			segs[i+1].text = strings.TrimLeftFunc(segs[i+1].text, jsSpace)
		}
	}
}
