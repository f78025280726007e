package tokenizer

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestWriteHFCompatCases writes, when DPINSTRUCT_HF_COMPAT_OUT names a
// directory, a tokenizer trained on the public corpus (less the held-out
// prompts) as tokenizer.json and our encodings of the held-out prompts
// (plus edge cases) as cases.jsonl, for testdata/hf_compat.mjs to check
// with HF's tokenizers.js. Skipped otherwise. See doc.go.
func TestWriteHFCompatCases(t *testing.T) {
	out := os.Getenv("DPINSTRUCT_HF_COMPAT_OUT")
	if out == "" {
		t.Skip("set DPINSTRUCT_HF_COMPAT_OUT=<dir> to write the HF compatibility cases")
	}
	d := loadSplit(t)
	tok, err := Train(context.Background(), seqOf(d.train), TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(filepath.Join(out, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(out, "cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	enc.SetEscapeHTML(false)
	texts := append([]string{}, smallCorpus...)
	for _, s := range roundTripCases {
		// JS strings hold no invalid UTF-8, and HF splits added tokens out
		// of plain text (this package never does).
		if utf8.ValidString(s) && !strings.Contains(s, EndOfText) {
			texts = append(texts, s)
		}
	}
	texts = append(texts, "  leading spaces", "trailing\n\n", "a  b   c\t\td", "x'S 'LL don't", "½ ⅓ Ⅻ ٣ १२", "\u00a0nbsp\u3000ideographic", "e\u0301 combining")
	texts = append(texts, d.test...)
	n := 0
	for _, s := range texts {
		if !utf8.ValidString(s) || strings.Contains(s, EndOfText) {
			continue
		}
		if err := enc.Encode(map[string]any{"text": s, "ids": tok.Encode(s)}); err != nil {
			t.Fatal(err)
		}
		n++
	}
	t.Logf("wrote %s/tokenizer.json (vocab %d) and %d cases", out, tok.VocabSize(), n)
}
