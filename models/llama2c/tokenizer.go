package llama2c

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
)

// Special token ids of llama2.c's SentencePiece vocabularies.
const (
	BOS = 1
	EOS = 2
)

// byteFallbackOffset is the id of "<0x00>": raw byte b is token b+3.
const byteFallbackOffset = 3

// Tokenizer is llama2.c's tokenizer export: one string and one merge score
// per token id.
type Tokenizer struct {
	Vocab          []string
	Scores         []float32
	MaxTokenLength int
	// lookup maps a piece to its id. When a piece repeats, the lowest id
	// wins (run.c's bsearch over a qsorted copy picks an arbitrary one; no
	// real vocabulary repeats a piece).
	lookup map[string]int
}

// ReadTokenizer reads a llama2.c tokenizer file holding vocabSize tokens
// (the checkpoint's Config.Vocab: the file does not record its own size).
func ReadTokenizer(path string, vocabSize int) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("llama2c: tokenizer: %w", err)
	}
	defer f.Close()
	t, err := ReadTokenizerFrom(bufio.NewReader(f), vocabSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ReadTokenizerFrom reads a llama2.c tokenizer from r: int32
// max_token_length, then per token float32 score, int32 length and the
// bytes; nothing may follow the last token.
func ReadTokenizerFrom(r io.Reader, vocabSize int) (*Tokenizer, error) {
	if vocabSize <= 0 {
		return nil, fmt.Errorf("%w: tokenizer vocabulary size %d, want > 0", ErrFormat, vocabSize)
	}
	var maxLen int32
	if err := binary.Read(r, binary.LittleEndian, &maxLen); err != nil {
		return nil, fmt.Errorf("llama2c: tokenizer header: %w", truncated(err))
	}
	if maxLen <= 0 {
		return nil, fmt.Errorf("%w: tokenizer max_token_length %d, want > 0", ErrFormat, maxLen)
	}
	// Capacity grows with the tokens actually read: vocabSize comes from
	// the caller and may not match the file.
	hint := min(vocabSize, 1024)
	t := &Tokenizer{
		MaxTokenLength: int(maxLen),
		Vocab:          make([]string, 0, hint),
		Scores:         make([]float32, 0, hint),
		lookup:         make(map[string]int, hint),
	}
	var rec [8]byte
	for id := range vocabSize {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return nil, fmt.Errorf("llama2c: tokenizer token %d of %d: %w", id, vocabSize, truncated(err))
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(rec[:4]))
		n := int32(binary.LittleEndian.Uint32(rec[4:]))
		// run.c sizes its merge buffer from max_token_length; a longer
		// token would overflow it there, so it is a corrupt file here.
		if n < 0 || n > maxLen {
			return nil, fmt.Errorf("%w: tokenizer token %d has length %d, want 0..%d (max_token_length)", ErrFormat, id, n, maxLen)
		}
		piece, err := readBytes(r, int(n))
		if err != nil {
			return nil, fmt.Errorf("llama2c: tokenizer token %d of %d (%d bytes): %w", id, vocabSize, n, truncated(err))
		}
		s := string(piece)
		t.Vocab = append(t.Vocab, s)
		t.Scores = append(t.Scores, score)
		if _, dup := t.lookup[s]; !dup {
			t.lookup[s] = id
		}
	}
	if err := expectEnd(r, "tokenizer", fmt.Sprintf("after %d tokens (wrong vocabulary size?)", vocabSize)); err != nil {
		return nil, err
	}
	return t, nil
}

// readBytes reads exactly n bytes. Past a small size it lets the buffer
// grow with the bytes present, so a corrupt length cannot force a huge
// allocation.
func readBytes(r io.Reader, n int) ([]byte, error) {
	if n <= 1<<12 {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err == nil && len(b) < n {
		err = io.ErrUnexpectedEOF
	}
	return b, err
}

// Lookup returns the id of piece, or -1 (run.c's str_lookup).
func (t *Tokenizer) Lookup(piece string) int {
	if id, ok := t.lookup[piece]; ok {
		return id
	}
	return -1
}

// Encode follows run.c's encode: optional BOS, a dummy-prefix " " token
// when text is not empty, one token per UTF-8 code point (falling back to
// one byte token per byte, id byte+3, when the code point is not in the
// vocabulary), then repeatedly the single best-scoring merge of two
// adjacent tokens until none is in the vocabulary; optional EOS.
//
// Like run.c it works on bytes, not runes: malformed UTF-8 is grouped by
// the same continuation-byte rule, and it never fails.
func (t *Tokenizer) Encode(text string, bos, eos bool) []int {
	tokens := make([]int, 0, len(text)+3)
	if bos {
		tokens = append(tokens, BOS)
	}
	// run.c adds the prefix whether or not " " is in the vocabulary (it
	// would then push -1); a vocabulary without " " is not SentencePiece's.
	if text != "" {
		if id := t.Lookup(" "); id >= 0 {
			tokens = append(tokens, id)
		}
	}
	start := 0
	for i := 0; i < len(text); i++ {
		if text[i]&0xC0 != 0x80 {
			start = i // a new code point (or a stray byte) begins
		}
		// Keep gathering while the next byte continues this code point,
		// up to run.c's 4-byte limit.
		if i+1 < len(text) && text[i+1]&0xC0 == 0x80 && i+1-start < 4 {
			continue
		}
		cp := text[start : i+1]
		if id := t.Lookup(cp); id >= 0 {
			tokens = append(tokens, id)
		} else {
			for j := 0; j < len(cp); j++ {
				tokens = append(tokens, int(cp[j])+byteFallbackOffset)
			}
		}
		start = i + 1
	}
	// Quadratic, like run.c; pair is reused so a lookup allocates nothing.
	var pair []byte
	for {
		bestScore, bestID, bestIdx := float32(-1e10), -1, -1
		for i := 0; i+1 < len(tokens); i++ {
			pair = append(append(pair[:0], t.piece(tokens[i])...), t.piece(tokens[i+1])...)
			id, ok := t.lookup[string(pair)]
			if ok && t.Scores[id] > bestScore {
				bestScore, bestID, bestIdx = t.Scores[id], id, i
			}
		}
		if bestIdx < 0 {
			break
		}
		tokens[bestIdx] = bestID
		tokens = append(tokens[:bestIdx+1], tokens[bestIdx+2:]...)
	}
	if eos {
		tokens = append(tokens, EOS)
	}
	return tokens
}

// piece is the vocabulary string of id, or "" for an id outside it (a
// byte-fallback id of a vocabulary too small to hold byte tokens).
func (t *Tokenizer) piece(id int) string {
	if id < 0 || id >= len(t.Vocab) {
		return ""
	}
	return t.Vocab[id]
}

// Decode returns the text of token following prev, as run.c's decode: the
// leading space of the first piece after BOS is dropped (SentencePiece's
// dummy prefix), and a byte token "<0xNN>" stands for the raw byte NN.
func (t *Tokenizer) Decode(prev, token int) string {
	p := t.piece(token)
	if prev == BOS && len(p) > 0 && p[0] == ' ' {
		p = p[1:]
	}
	if b, ok := rawByte(p); ok {
		return string([]byte{b})
	}
	return p
}

// rawByte parses "<0xNN>" (two hex digits, either case). run.c's sscanf
// with "<0x%02hhX>" is laxer (one digit, no closing '>'); no real
// vocabulary has such pieces.
func rawByte(p string) (byte, bool) {
	if len(p) != 6 || p[:3] != "<0x" || p[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(p[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

// SafePiece is what run.c's safe_printf prints of a decoded piece: all of
// it, except a single byte that is neither printable ASCII nor white space,
// which it drops (so stray byte tokens do not garble a terminal).
func SafePiece(p string) string {
	if len(p) == 1 {
		b := p[0]
		if !(b >= 0x20 && b < 0x7f) && !bytes.ContainsRune([]byte(" \t\n\v\f\r"), rune(b)) {
			return ""
		}
	}
	return p
}
