package hfconvert

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/llama2c"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// tokenizerTexts is a deterministic mix of a few hundred strings: story
// sentences, digits, punctuation, white space runs, and non-ASCII text
// that the 512-piece vocabulary only covers by byte fallback.
func tokenizerTexts() []string {
	texts := []string{
		"", " ", "  ", "a", "Once upon a time, there was a little girl named Lily.",
		"She loved to play outside in the park.", "\"Hello!\" said Tom. \"Can I play?\"",
		"1234567890", "3.14159 + 2.71828 = 5.85987", "Hello\nworld", "tab\there", "  leading spaces",
		"trailing spaces  ", "ÀÉÎÕÜ àéîõü", "naïve café", "中文字符", "日本語のテキスト", "emoji 🙂🚀 end",
		"Привет, мир", "ελληνικά", "a\u00a0b", "™ and \u200a hair space", "[brackets] {braces} (parens) <angle>",
		"~!@#$%^&*()_+`-=|\\;':\",./<>?", "The end.\n\nThe next day...", "\u0000nul and \u007fdel",
	}
	words := []string{"the", "a", "little", "dog", "cat", "big", "happy", "sad", "ran", "jumped",
		"Lily", "Tom", "Ben", "said", "mom", "tree", "ball", "sun", "!", ",", ".", "?", "\"", "'s",
		"42", "2026", "é", "ü", "ß", "ñ", "ø", "€", "→", "—", "…", "雪", "🙂", "\n", "  "}
	r := rand.New(rand.NewPCG(42, 43))
	for range 300 {
		var b strings.Builder
		n := 1 + r.IntN(14)
		for i := range n {
			if i > 0 && r.IntN(4) != 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		texts = append(texts, b.String())
	}
	return texts
}

// TestTokenizerMatchesLlama2c loads the converted tokenizer.json with
// models/tokenizer's HF loader and checks its ids against run.c's encoder
// (without BOS/EOS; run.c's dummy " " token is HF's Prepend "▁").
func TestTokenizerMatchesLlama2c(t *testing.T) {
	ck, tok := loadStories260K(t)
	dir := convert(t, ck, tok)
	hf, err := tokenizer.LoadHF(dir)
	if err != nil {
		t.Fatalf("LoadHF: %v", err)
	}
	if hf.BOS() != llama2c.BOS || hf.EOS() != llama2c.EOS {
		t.Errorf("BOS %d EOS %d, want %d %d", hf.BOS(), hf.EOS(), llama2c.BOS, llama2c.EOS)
	}
	texts := tokenizerTexts()
	var diffs []string
	for _, text := range texts {
		want := tok.Encode(text, false, false)
		got32 := hf.Encode(text)
		got := make([]int, len(got32))
		for i, id := range got32 {
			got[i] = int(id)
		}
		if !slices.Equal(got, want) {
			diffs = append(diffs, fmt.Sprintf("%q: HF %v, run.c %v", text, got, want))
		}
		// Decoding must give the text back (the vocabulary has byte
		// tokens for everything it lacks).
		if dec := hf.Decode(got32); dec != text {
			t.Errorf("Decode(Encode(%q)) = %q", text, dec)
		}
	}
	t.Logf("%d texts, %d differ from run.c", len(texts), len(diffs))
	for _, d := range diffs {
		t.Error(d)
	}
}

// TestTokenizerSpecialPieces checks the vocabulary HF sees: specials by
// their SentencePiece names, "▁" for run.c's spaces, byte tokens as is.
func TestTokenizerSpecialPieces(t *testing.T) {
	ck, tok := loadStories260K(t)
	hf, err := tokenizer.LoadHF(convert(t, ck, tok))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int32]string{0: "<unk>", 1: "<s>", 2: "</s>", 3: "<0x00>", 258: "<0xFF>", 259: "▁t", 265: "▁the"} {
		if got := hf.TokenString(id); got != want {
			t.Errorf("TokenString(%d) = %q, want %q", id, got, want)
		}
	}
	for _, id := range []int32{0, 1, 2} {
		if !hf.IsSpecial(id) {
			t.Errorf("id %d is not special", id)
		}
	}
}

func TestMergesOrder(t *testing.T) {
	pieces := []string{"<unk>", "<s>", "</s>", "a", "b", "ab", "ba", "aba", "▁", "▁a"}
	scores := []float32{0, 0, 0, -10, -11, -1, -3, -2, -12, -4}
	got := merges(pieces, scores)
	want := [][2]string{{"a", "b"}, {"a", "ba"}, {"ab", "a"}, {"b", "a"}, {"▁", "a"}}
	if !slices.Equal(got, want) {
		t.Errorf("merges = %v, want %v", got, want)
	}
}

// TestTokenizerSpecialLiteral pins the one known difference: HF splits an
// added token written literally in the text ("<s>") into its id, while
// run.c's encoder knows no added tokens and spells it out piece by piece.
func TestTokenizerSpecialLiteral(t *testing.T) {
	ck, tok := loadStories260K(t)
	hf, err := tokenizer.LoadHF(convert(t, ck, tok))
	if err != nil {
		t.Fatal(err)
	}
	got := hf.Encode("a<s>b")
	if !slices.Contains(got, llama2c.BOS) {
		t.Errorf("HF Encode(\"a<s>b\") = %v, want the BOS id inside", got)
	}
	if want := tok.Encode("a<s>b", false, false); slices.Contains(want, llama2c.BOS) {
		t.Errorf("run.c Encode(\"a<s>b\") = %v contains BOS", want)
	}
	t.Logf("HF %v, run.c %v", got, tok.Encode("a<s>b", false, false))
}
