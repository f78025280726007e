package llama2c

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadCheckpoint feeds arbitrary bytes to ReadCheckpoint: it must not
// panic, every failure must be ErrFormat (a bytes.Reader has no I/O
// errors), and a checkpoint it accepts must run a forward step.
func FuzzReadCheckpoint(f *testing.F) {
	f.Add(synthCheckpoint(f, 8, 12, 2, 2, 1, 16, 4))
	f.Add(synthCheckpoint(f, 4, 4, 1, 2, 2, -3, 2))
	f.Add(header(8, 12, 2, 2, 1, 16, 4))
	f.Add(header(1<<30, 1<<30, 1<<30, 2, 1, 16, 4))
	f.Add([]byte("42ka\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadCheckpoint(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		p := c.Config
		// Keep the KV cache small: weights are bounded by the input, the
		// cache (Layers*SeqLen*KVDim) is not.
		if p.Layers*p.SeqLen*p.KVDim() > 1<<20 {
			return
		}
		s := c.NewState()
		if got := len(c.Forward(s, p.Vocab-1, 0)); got != p.Vocab {
			t.Fatalf("Forward gave %d logits, want %d", got, p.Vocab)
		}
	})
}

// FuzzReadTokenizer feeds arbitrary bytes and sizes to ReadTokenizerFrom;
// a tokenizer it accepts must encode and decode any text without panic.
func FuzzReadTokenizer(f *testing.F) {
	f.Add(tokFile(3, []string{"a", "bc", ""}, []float32{0, -1, 2}), uint16(3), "abc")
	f.Add(tokFile(2, []string{" ", "a", " a", "aa"}, []float32{0, 0, 3, 1}), uint16(4), " aaa é")
	f.Add([]byte{}, uint16(1), "")
	// The real file, when present, seeds the fuzzer with a whole valid
	// vocabulary.
	if dir := stories260KDir(); dir != "" {
		if data, err := os.ReadFile(filepath.Join(dir, "tok512.bin")); err == nil {
			f.Add(data, uint16(512), "Once upon a time")
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, vocab uint16, text string) {
		tok, err := ReadTokenizerFrom(bytes.NewReader(data), int(vocab))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if len(tok.Vocab) != int(vocab) || len(tok.Scores) != int(vocab) {
			t.Fatalf("read %d pieces and %d scores, want %d", len(tok.Vocab), len(tok.Scores), vocab)
		}
		// Encode is quadratic in the text (as run.c's is); long texts
		// only slow the fuzzer down.
		ids := tok.Encode(text[:min(len(text), 256)], true, true)
		for i := 1; i < len(ids); i++ {
			_ = SafePiece(tok.Decode(ids[i-1], ids[i]))
		}
	})
}

// FuzzStories260KRoundTrip checks Encode then Decode gives the text back
// on the real vocabulary, which has every byte token. Text holding a
// literal "<0x" is left out: a merge could spell a byte token's name,
// which decodes (in run.c too) to the byte.
func FuzzStories260KRoundTrip(f *testing.F) {
	_, tok := loadStories260K(f)
	for _, s := range []string{"Once upon a time", " x", "日本", "\xc3", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if strings.Contains(text, "<0x") {
			return
		}
		ids := tok.Encode(text, true, false)
		if got := decodeAll(tok, ids); got != text {
			t.Fatalf("round trip of %q gave %q (ids %v)", text, got, ids)
		}
		assertMerged(t, tok, ids)
	})
}
