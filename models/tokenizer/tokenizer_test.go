package tokenizer

import (
	"bytes"
	"context"
	"iter"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dpinstruct/dpinstruct/internal/golden"
)

// smallCorpus is a fixed, varied training text for unit tests.
var smallCorpus = []string{
	"Hello world! Hello there, world. The world isn't flat; it's round.",
	"Write a poem about the sea.\nThe sea is wide and the sea is deep.",
	"What's the capital of France? The capital of France is Paris.",
	"I'm going to the market to buy 12 apples and 3 oranges for $4.50.",
	"Explain how transformers work in machine learning, step by step.",
	"Café, naïve, résumé, Zürich and São Paulo are spelled with accents.",
	"日本語のテキストも少し含めます。東京は日本の首都です。",
	"Emoji test 😀😀 and 🇫🇷 flags, plus math: x² + y² = z².",
	"def f(x):\n    return x * 2  # double it\n\n\nprint(f(21))",
	"    indented line\n\ttabbed line\r\nwindows line end   ",
	"They'll say we've done what you'd expect, and I'd agree.",
	"The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
}

func seqOf(texts []string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for _, s := range texts {
			if !yield(s, nil) {
				return
			}
		}
	}
}

func trainSmall(t testing.TB, vocab int) *Tokenizer {
	t.Helper()
	var texts []string
	for i := range 20 {
		for _, s := range smallCorpus {
			if i%3 == 0 || len(s)%2 == 0 {
				texts = append(texts, s)
			}
		}
	}
	tok, err := Train(context.Background(), seqOf(texts), TrainOptions{VocabSize: vocab})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func pieces(s string) []string {
	var out []string
	preTokenize(s, func(i, j int) { out = append(out, s[i:j]) })
	return out
}

func TestPreTokenize(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"Hello world", []string{"Hello", " world"}},
		{"Hello  world", []string{"Hello", " ", " world"}},
		{"  hi", []string{" ", " hi"}},
		{"a  \n\nb", []string{"a", "  \n", "\n", "b"}},
		{"x   ", []string{"x", "   "}},
		{"\nx", []string{"\n", "x"}},
		{" \tx", []string{" ", "\t", "x"}},
		{"don't", []string{"don", "'t"}},
		{"I'm 25!!", []string{"I", "'m", " 25", "!!"}},
		{"they'll we've you're he'd", []string{"they", "'ll", " we", "'ve", " you", "'re", " he", "'d"}},
		{"'sx 'S", []string{"'s", "x", " '", "S"}},
		{"x?'s", []string{"x", "?'", "s"}},
		{"abc123def", []string{"abc", "123", "def"}},
		{"3.14", []string{"3", ".", "14"}},
		{"Café naïve", []string{"Café", " naïve"}},
		{"日本語。東京", []string{"日本語", "。", "東京"}},
		{"hi 😀😀!", []string{"hi", " 😀😀!"}},
		{"a\u00a0b", []string{"a", "\u00a0", "b"}},
		{"a\xffb\xfe", []string{"a", "\xff", "b", "\xfe"}},
		{" \xff\xfe.", []string{" \xff\xfe."}},
		{"x²", []string{"x", "²"}},
		{"e\u0301", []string{"e", "\u0301"}},
		{"<|endoftext|>", []string{"<|", "endoftext", "|>"}},
	}
	for _, c := range cases {
		if got := pieces(c.in); !slices.Equal(got, c.want) {
			t.Errorf("preTokenize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

var roundTripCases = []string{
	"",
	"a",
	"Hello world! The world is round.",
	"Café, naïve, résumé, Zürich",
	"日本語のテキスト、中文文本，한국어 텍스트",
	"😀👍🏽👨‍👩‍👧 🇫🇷",
	"control \x00\x01\x07\x1b[31m\x7f chars",
	"tabs\tand\r\nnewlines\n\n\n   trailing   ",
	"invalid \xff\xfe utf8 \xc3 truncated \xe6\x97",
	"\xed\xa0\x80 surrogate half, \xf4\x90\x80\x80 beyond max",
	"text with <|endoftext|> inside",
	strings.Repeat("=", 5000),
	strings.Repeat(" ", 300) + "x" + strings.Repeat("ab", 400),
	"\u200b\ufeff\u2028\u0085zero-width and odd spaces",
}

func TestRoundTrip(t *testing.T) {
	tok := trainSmall(t, 600)
	for _, s := range roundTripCases {
		ids := tok.Encode(s)
		if got := tok.Decode(ids); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
		for _, id := range ids {
			if tok.IsSpecial(id) || id < 0 || int(id) >= tok.VocabSize() {
				t.Errorf("Encode(%q) produced id %d", s, id)
			}
		}
	}
}

func TestSpecials(t *testing.T) {
	tok := trainSmall(t, 400)
	eos := tok.EOS()
	if eos < 0 || tok.TokenString(eos) != EndOfText || !tok.IsSpecial(eos) {
		t.Fatalf("EOS = %d (%q)", eos, tok.TokenString(eos))
	}
	if tok.VocabSize() != 400 || int(eos) != tok.VocabSize()-1 {
		t.Fatalf("vocab %d, eos %d", tok.VocabSize(), eos)
	}
	ids := tok.Encode("a" + EndOfText + "b")
	if slices.Contains(ids, eos) {
		t.Fatal("Encode produced EOS from plain text")
	}
	if got := tok.Decode(append(tok.Encode("hi"), eos)); got != "hi"+EndOfText {
		t.Fatalf("Decode with EOS = %q", got)
	}
	if id, ok := tok.TokenID(EndOfText); !ok || id != eos {
		t.Fatal("TokenID(EOS)")
	}
	if tok.Decode([]int32{-1, 1 << 30}) != "" {
		t.Fatal("out-of-range ids should decode to nothing")
	}
	// Byte tokens are ids 0-255 and spell bytes the GPT-2 way.
	if tok.TokenString(' ') != "Ġ" || tok.TokenString('\n') != "Ċ" || tok.TokenString('A') != "A" {
		t.Fatal("byte-level spelling")
	}
	if _, err := Train(context.Background(), seqOf(smallCorpus), TrainOptions{VocabSize: 300, Specials: []string{"pad"}}); err == nil {
		t.Fatal("a special that is a plain word should be refused")
	}
	two, err := Train(context.Background(), seqOf(smallCorpus), TrainOptions{VocabSize: 300, Specials: []string{"<|pad|>", "<|日本|>"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(two.Specials()); n != 3 || two.TokenString(two.EOS()) != EndOfText {
		t.Fatalf("specials %v", two.Specials())
	}
	js, err := two.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(js)
	if err != nil {
		t.Fatalf("reloading non-ASCII specials: %v", err)
	}
	if id, ok := back.TokenID("<|日本|>"); !ok || !back.IsSpecial(id) || back.Decode([]int32{id}) != "<|日本|>" {
		t.Fatal("non-ASCII special lost in Save/Load")
	}
	if _, err := Train(context.Background(), seqOf(smallCorpus), TrainOptions{VocabSize: 100}); err == nil {
		t.Fatal("vocab below 257 should fail")
	}
}

func TestTrainCompresses(t *testing.T) {
	tok := trainSmall(t, 600)
	s := "The capital of France is Paris. Hello world!"
	ids := tok.Encode(s)
	if len(ids) > len(s)/2 {
		t.Errorf("%q: %d tokens for %d bytes", s, len(ids), len(s))
	}
	// "Ġworld" is frequent in the corpus: it must be a single token.
	if id, ok := tok.TokenID("Ġworld"); !ok || !slices.Contains(tok.Encode(" world"), id) {
		t.Errorf("Ġworld not learned: %v", tok.Encode(" world"))
	}
}

func TestTrainDeterministic(t *testing.T) {
	a, err := trainSmall(t, 500).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Reversed order and a single worker give the same tokenizer.
	var texts []string
	for i := range 20 {
		for _, s := range smallCorpus {
			if i%3 == 0 || len(s)%2 == 0 {
				texts = append(texts, s)
			}
		}
	}
	slices.Reverse(texts)
	tok, err := Train(context.Background(), seqOf(texts), TrainOptions{VocabSize: 500, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tok.Marshal()
	if !bytes.Equal(a, b) {
		t.Fatal("training is not deterministic")
	}
}

func TestGolden(t *testing.T) {
	tok, err := Train(context.Background(), seqOf(smallCorpus), TrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tok.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "tokenizer.golden.json")
	want := golden.Read(t, path, got)
	if !bytes.Equal(got, want) {
		t.Fatalf("tokenizer.json differs from %s (if intended, rerun with -update)", path)
	}
}

func TestSaveLoad(t *testing.T) {
	tok := trainSmall(t, 600)
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := tok.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.VocabSize() != tok.VocabSize() || back.EOS() != tok.EOS() || back.NumMerges() != tok.NumMerges() {
		t.Fatalf("loaded: vocab %d eos %d merges %d; saved: %d %d %d", back.VocabSize(), back.EOS(), back.NumMerges(), tok.VocabSize(), tok.EOS(), tok.NumMerges())
	}
	for _, s := range append(smallCorpus, roundTripCases...) {
		if a, b := tok.Encode(s), back.Encode(s); !slices.Equal(a, b) {
			t.Errorf("%q: ids differ after Save/Load:\n%v\n%v", s, a, b)
		}
	}
	again, _ := back.Marshal()
	orig, _ := tok.Marshal()
	if !bytes.Equal(again, orig) {
		t.Fatal("Marshal(Load(Save(t))) != Marshal(t)")
	}
}

// TestLoadGPT2Style loads a hand-written file shaped like GPT-2's
// tokenizer.json: byte tokens in GPT-2's order, merges as strings or as
// pairs (newer HF), <|endoftext|> both in the vocab and in added_tokens.
func TestLoadGPT2Style(t *testing.T) {
	var vocab []string
	for c := '!'; c <= '~'; c++ { // GPT-2 lists printable bytes first
		vocab = append(vocab, string(c))
	}
	for b := 0; b < 256; b++ {
		if !slices.Contains(vocab, byteTok[b]) {
			vocab = append(vocab, byteTok[b])
		}
	}
	vocab = append(vocab, "Ġt", "he", "Ġthe", "<|endoftext|>")
	var vb strings.Builder
	for i, v := range vocab {
		if i > 0 {
			vb.WriteString(",")
		}
		vb.WriteString(`"` + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `"`, `\"`) + `":` + itoa(i))
	}
	for _, merges := range []string{`["Ġ t", "h e", "Ġt he"]`, `[["Ġ", "t"], ["h", "e"], ["Ġt", "he"]]`} {
		doc := `{"version":"1.0","truncation":null,"padding":null,
"added_tokens":[{"id":` + itoa(len(vocab)-1) + `,"content":"<|endoftext|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":true,"special":true}],
"normalizer":null,
"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true},
"post_processor":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false},
"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true},
"model":{"dropout":null,"unk_token":null,"continuing_subword_prefix":"","end_of_word_suffix":"","fuse_unk":false,"vocab":{` + vb.String() + `},"merges":` + merges + `}}`
		// GPT-2's file predates use_regex (default true in HF).
		doc = strings.Replace(doc, `"trim_offsets":true},`, `"trim_offsets":true,"use_regex":true},`, 1)
		doc = strings.Replace(doc, `"model":{`, `"model":{"type":"BPE",`, 1)
		tok, err := Unmarshal([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		ids := tok.Encode("the theme")
		want := []int32{int32(slices.Index(vocab, "t")), int32(slices.Index(vocab, "he")), int32(slices.Index(vocab, "Ġthe")), int32(slices.Index(vocab, "m")), int32(slices.Index(vocab, "e"))}
		if !slices.Equal(ids, want) {
			t.Fatalf("merges %s: got %v, want %v", merges, ids, want)
		}
		if tok.EOS() != int32(len(vocab)-1) || tok.Decode(ids) != "the theme" {
			t.Fatal("eos/decode")
		}
	}
	for _, bad := range []string{
		`{"model":{"type":"WordPiece"}}`,
		`{"normalizer":{"type":"NFC"},"pre_tokenizer":{"type":"ByteLevel","use_regex":true},"model":{"type":"BPE"}}`,
		`{"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":true,"use_regex":true},"model":{"type":"BPE"}}`,
		`{"pre_tokenizer":{"type":"ByteLevel","use_regex":true},"model":{"type":"BPE","vocab":{"a":0}}}`,
	} {
		if _, err := Unmarshal([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestHeapMatchesScan checks the O(n log n) merge against the simple one.
func TestHeapMatchesScan(t *testing.T) {
	tok := trainSmall(t, 600)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"the", " ", "e", "a", "ll", "o", "=", "wor", "ld", "!", "é"}
	for range 300 {
		var sb strings.Builder
		for range rng.IntN(200) + 2 {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		s := sb.String()
		sym := make([]int32, len(s))
		for i := range len(s) {
			sym[i] = tok.byteID[s[i]]
		}
		a := tok.mergeWordHeap(slices.Clone(sym))
		var b []int32
		// the scan version, forced regardless of length
		b = slices.Clone(sym)
		for len(b) > 1 {
			best, bestRank := -1, int32(0)
			var bestID int32
			for i := 0; i+1 < len(b); i++ {
				if m, ok := tok.merges[pairKey(b[i], b[i+1])]; ok && (best < 0 || m.rank < bestRank) {
					best, bestRank, bestID = i, m.rank, m.id
				}
			}
			if best < 0 {
				break
			}
			b[best] = bestID
			b = append(b[:best+1], b[best+2:]...)
		}
		if !slices.Equal(a, b) {
			t.Fatalf("%q: heap %v, scan %v", s, a, b)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range roundTripCases {
		f.Add(s)
	}
	for _, s := range smallCorpus {
		f.Add(s)
	}
	tok := trainSmall(f, 600)
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		if got := tok.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
		if len(ids) > len(s) {
			t.Fatalf("%d tokens for %d bytes", len(ids), len(s))
		}
		var joined strings.Builder
		for _, p := range pieces(s) {
			if p == "" {
				t.Fatal("empty piece")
			}
			joined.WriteString(p)
		}
		if joined.String() != s {
			t.Fatal("pieces do not cover the input")
		}
	})
}

func TestTrainErrors(t *testing.T) {
	boom := func(yield func(string, error) bool) {
		if yield("some text", nil) {
			yield("", os.ErrNotExist)
		}
	}
	if _, err := Train(context.Background(), boom, TrainOptions{}); err == nil || !strings.Contains(err.Error(), "file does not exist") {
		t.Fatalf("iterator error not returned: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Train(ctx, seqOf(smallCorpus), TrainOptions{}); err == nil {
		t.Fatal("cancelled context: no error")
	}
	if _, err := Train(context.Background(), seqOf(nil), TrainOptions{}); err == nil {
		t.Fatal("no text: no error")
	}
}

func TestEncodeConcurrent(t *testing.T) {
	tok := trainSmall(t, 600)
	want := make([][]int32, len(smallCorpus))
	for i, s := range smallCorpus {
		want[i] = tok.Encode(s)
	}
	done := make(chan bool)
	for g := range 4 {
		go func() {
			ok := true
			for k := range 50 {
				i := (g + k) % len(smallCorpus)
				ok = ok && slices.Equal(tok.Encode(smallCorpus[i]), want[i])
			}
			done <- ok
		}()
	}
	for range 4 {
		if !<-done {
			t.Fatal("concurrent Encode differs")
		}
	}
}
