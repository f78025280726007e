package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// writeHFDir writes files (name -> content) into a fresh directory.
func writeHFDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tinyHFJSON is a valid tokenizer.json with vocab a, b, ab, ▁ and
// <unk>; patch replaces top-level fields (raw JSON) and model fields
// (keys prefixed "model.").
func tinyHFJSON(t *testing.T, patch map[string]string) string {
	t.Helper()
	model := map[string]json.RawMessage{
		"type":      json.RawMessage(`"BPE"`),
		"vocab":     json.RawMessage(`{"<unk>":0,"a":1,"b":2,"ab":3,"▁":4,"▁ab":5}`),
		"merges":    json.RawMessage(`["a b",["▁","ab"]]`),
		"unk_token": json.RawMessage(`"<unk>"`),
	}
	top := map[string]json.RawMessage{
		"version":       json.RawMessage(`"1.0"`),
		"truncation":    json.RawMessage(`null`),
		"padding":       json.RawMessage(`null`),
		"added_tokens":  json.RawMessage(`[{"id":0,"content":"<unk>","special":true}]`),
		"normalizer":    json.RawMessage(`null`),
		"pre_tokenizer": json.RawMessage(`null`),
		"decoder":       json.RawMessage(`null`),
	}
	for k, v := range patch {
		if m, ok := strings.CutPrefix(k, "model."); ok {
			model[m] = json.RawMessage(v)
		} else {
			top[k] = json.RawMessage(v)
		}
	}
	mb, err := json.Marshal(model)
	if err != nil {
		t.Fatal(err)
	}
	top["model"] = mb
	b, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLoadHFErrors checks that each unsupported or broken setting fails at
// load with an error naming the field.
func TestLoadHFErrors(t *testing.T) {
	const qwenCfg = `{"tokenizer_class":"Qwen2Tokenizer","added_tokens_decoder":{}}`
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no files", map[string]string{}, `tokenizer_class ""`},
		{"bad json", map[string]string{"tokenizer.json": "{"}, "tokenizer.json"},
		{"model type", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"model.type": `"Unigram"`})}, `model.type "Unigram" is not supported`},
		{"dropout", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"model.dropout": `0.1`})}, "model.dropout"},
		{"subword prefix", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"model.continuing_subword_prefix": `"##"`})}, "model.continuing_subword_prefix"},
		{"merge not in vocab", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"model.merges": `["a c"]`})}, "model.merges[0]"},
		{"merge malformed", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"model.merges": `["a b", "abc"]`})}, "model.merges[1]"},
		{"merge triple", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"model.merges": `[["a","b","c"]]`})}, "model.merges[0]"},
		{"unk missing", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"model.unk_token": `"<x>"`})}, "model.unk_token"},
		{"byte fallback", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"model.byte_fallback": `true`})}, "model.byte_fallback"},
		{"truncation", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"truncation": `{"max_length":8}`})}, "truncation"},
		{"padding", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"padding": `{}`})}, "padding"},
		{"normalizer", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"normalizer": `{"type":"Lowercase"}`})}, `normalizer.type "Lowercase" is not supported`},
		{"nested normalizer", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"normalizer": `{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"NFKC"}]}`})}, `normalizer.normalizers[1].type "NFKC"`},
		{"replace regex", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"normalizer": `{"type":"Replace","pattern":{"Regex":" +"},"content":" "}`})}, "normalizer.pattern"},
		{"pre-tokenizer", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"pre_tokenizer": `{"type":"Whitespace"}`})}, `tokenizer.json: pre_tokenizer.type "Whitespace" is not supported`},
		{"split regex", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"pre_tokenizer": `{"type":"Split","pattern":{"Regex":"\\w+"},"behavior":"Isolated","invert":false}`})}, "pre_tokenizer.pattern.Regex"},
		{"split behavior", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"pre_tokenizer": `{"type":"Split","pattern":{"Regex":` + mustJSON(t, qwen2Pattern) + `},"behavior":"Removed","invert":false}`})}, `behavior "Removed"`},
		{"byte level not last", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"pre_tokenizer": `{"type":"Sequence","pretokenizers":[{"type":"ByteLevel"},{"type":"Digits"}]}`})}, "pre_tokenizer.pretokenizers[1]: follows a ByteLevel"},
		{"metaspace split", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"pre_tokenizer": `{"type":"Metaspace","split":true}`})}, "Metaspace with split true"},
		{"decoder", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"decoder": `{"type":"WordPiece"}`})}, `decoder.type "WordPiece" is not supported`},
		{"strip content", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"decoder": `{"type":"Strip","content":"ab","start":1}`})}, "decoder.content"},
		{"single word", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"added_tokens": `[{"id":9,"content":"<x>","single_word":true}]`})}, "single_word true is not supported"},
		{"added empty", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"added_tokens": `[{"id":9,"content":""}]`})}, "empty content"},
		{"added clash", map[string]string{"tokenizer.json": tinyHFJSON(t, map[string]string{"added_tokens": `[{"id":1,"content":"<x>"}]`})}, `id 1 is "a" in model.vocab`},
		{"bos missing", map[string]string{"tokenizer.json": tinyHFJSON(t, nil), "tokenizer_config.json": `{"bos_token":"<s>"}`}, "bos_token"},
		{"bad config", map[string]string{"tokenizer.json": tinyHFJSON(t, nil), "tokenizer_config.json": `[`}, "tokenizer_config.json"},
		{"eos id range", map[string]string{"tokenizer.json": tinyHFJSON(t, nil), "config.json": `{"eos_token_id":99}`}, "eos_token_id 99"},
		{"vocab class", map[string]string{"vocab.json": `{"a":0}`, "merges.txt": "", "tokenizer_config.json": `{"tokenizer_class":"BertTokenizer"}`}, `(vocab.json + merges.txt): no tokenizer.json, and tokenizer_config.json: tokenizer_class "BertTokenizer" is not supported`},
		{"vocab missing", map[string]string{"merges.txt": "", "tokenizer_config.json": qwenCfg}, "vocab.json"},
		{"vocab bad", map[string]string{"vocab.json": `{"a":"x"}`, "merges.txt": "", "tokenizer_config.json": qwenCfg}, "vocab.json"},
		{"merges bad", map[string]string{"vocab.json": `{"a":0,"b":1,"ab":2}`, "merges.txt": "#version: 0.2\na b\nab\n", "tokenizer_config.json": qwenCfg}, "merges.txt: line 3"},
		{"added key", map[string]string{"vocab.json": `{"a":0}`, "merges.txt": "", "tokenizer_config.json": `{"tokenizer_class":"Qwen2Tokenizer","added_tokens_decoder":{"x":{"content":"<x>"}}}`}, `key "x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadHF(writeHFDir(t, c.files))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadHF error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLoadHFTiny covers what the real tokenizers do not use: Metaspace,
// unk with fuse_unk, lstrip/rstrip and normalized added tokens, ignore_merges.
func TestLoadHFTiny(t *testing.T) {
	meta := tinyHFJSON(t, map[string]string{
		"pre_tokenizer":  `{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":false}`,
		"decoder":        `{"type":"Metaspace","replacement":"▁"}`,
		"added_tokens":   `[{"id":0,"content":"<unk>","special":true},{"id":6,"content":"<x>","lstrip":true,"rstrip":true,"special":true},{"id":7,"content":"Q","normalized":true}]`,
		"normalizer":     `{"type":"Replace","pattern":{"String":"z"},"content":"Q"}`,
		"model.fuse_unk": `true`,
	})
	h, err := LoadHF(writeHFDir(t, map[string]string{"tokenizer.json": meta, "config.json": `{"bos_token_id":6,"eos_token_id":[0,6]}`}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   string
		want []int32
	}{
		{"ab", []int32{5}},
		{"ab ab", []int32{5, 5}},
		{"cdab", []int32{4, 0, 3}},        // c, d unknown: fused into one <unk>
		{"ab  <x>  ab", []int32{5, 6, 5}}, // lstrip/rstrip eat the spaces
		{"abz", []int32{5, 7}},            // z normalizes to the added Q
		{"", nil},
	} {
		if got := h.Encode(c.in); !slices.Equal(got, c.want) && len(got)+len(c.want) > 0 {
			t.Errorf("Encode(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := h.Decode([]int32{5, 5, 99, -1}); got != "ab ab" {
		t.Errorf("Decode = %q", got)
	}
	if h.BOS() != 6 || h.EOS() != 0 || !h.IsSpecial(6) || h.IsSpecial(7) || h.IsSpecial(5) {
		t.Errorf("BOS %d EOS %d specials %v", h.BOS(), h.EOS(), h.Specials())
	}
	if id, ok := h.TokenID("<x>"); !ok || id != 6 || h.TokenString(6) != "<x>" || h.TokenString(99) != "" || h.VocabSize() != 8 {
		t.Errorf("lookups: %d %v %q size %d", id, ok, h.TokenString(6), h.VocabSize())
	}

	im := tinyHFJSON(t, map[string]string{"model.ignore_merges": `true`, "model.merges": `[]`})
	h, err = LoadHF(writeHFDir(t, map[string]string{"tokenizer.json": im}))
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Encode("ab"); !slices.Equal(got, []int32{3}) {
		t.Errorf("ignore_merges: Encode(ab) = %v, want [3]", got)
	}
	if got := h.Decode([]int32{1, 2}); got != "a b" { // no decoder: tokens joined by spaces, as HF's JS
		t.Errorf("no decoder: Decode = %q", got)
	}
}

// TestLoadHFReadsOwnTokenizer checks that LoadHF, given this package's own
// tokenizer.json, encodes as Tokenizer does where both agree by design
// (valid UTF-8, no "<|endoftext|>", no U+0085/U+FEFF, whose \s differs).
func TestLoadHFReadsOwnTokenizer(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "tokenizer.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	own, err := Load(filepath.Join("testdata", "tokenizer.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := LoadHF(writeHFDir(t, map[string]string{"tokenizer.json": string(data)}))
	if err != nil {
		t.Fatal(err)
	}
	texts := append(append([]string{}, smallCorpus...), roundTripCases...)
	for _, s := range texts {
		if !utf8.ValidString(s) || strings.Contains(s, EndOfText) || strings.ContainsAny(s, "\u0085\ufeff") {
			continue
		}
		if got, want := h.Encode(s), own.Encode(s); !slices.Equal(got, want) {
			t.Errorf("%q: LoadHF %v, Load %v", s, got, want)
		}
		if got := h.Decode(own.Encode(s)); got != s {
			t.Errorf("%q: Decode %q", s, got)
		}
	}
	if id, _ := h.TokenID(EndOfText); h.Encode(EndOfText)[0] != id {
		t.Errorf("added token not split out")
	}
}

// TestLoadHFRealSpecials checks BOS/EOS and the special-token handling of
// the real tokenizers.
func TestLoadHFRealSpecials(t *testing.T) {
	dir := hfTokenizersDir(t)
	for _, c := range []struct {
		name     string
		bos, eos int32
		text     string
		ids      []int32
	}{
		{"SmolLM2-135M-Instruct", 1, 2, "<|im_start|><|im_end|>", []int32{1, 2}},
		{"Mistral-7B-v0.1", 1, 2, "</s>", []int32{2}},
		{"Qwen2.5-0.5B-Instruct", -1, 151645, "<|endoftext|><tool_call>", []int32{151643, 151657}},
	} {
		h, err := LoadHF(filepath.Join(dir, c.name))
		if err != nil {
			t.Fatal(err)
		}
		if h.BOS() != c.bos || h.EOS() != c.eos {
			t.Errorf("%s: BOS %d EOS %d, want %d %d", c.name, h.BOS(), h.EOS(), c.bos, c.eos)
		}
		if got := h.Encode(c.text); !slices.Equal(got, c.ids) {
			t.Errorf("%s: Encode(%q) = %v, want %v", c.name, c.text, got, c.ids)
		}
		if got := h.Decode(c.ids); got != c.text {
			t.Errorf("%s: Decode = %q", c.name, got)
		}
	}
}

// TestLossyUTF8 checks the WHATWG replacement of ill-formed bytes.
func TestLossyUTF8(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ok", "ok"},
		{"\xe2\x82", "\ufffd"},                 // truncated 3-byte sequence: one U+FFFD
		{"\xe2\x82a", "\ufffda"},               //
		{"\xff\xfe", "\ufffd\ufffd"},           // bytes that never start a sequence
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"}, // surrogate: ED then two lone continuations
		{"\xf0\x9f\x98", "\ufffd"},
	} {
		if got := lossyUTF8([]byte(c.in)); got != c.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestHFEncodeConcurrent runs Encode from several goroutines (the cache is
// shared; run with -race).
func TestHFEncodeConcurrent(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "tokenizer.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := LoadHF(writeHFDir(t, map[string]string{"tokenizer.json": string(data)}))
	if err != nil {
		t.Fatal(err)
	}
	want := make([][]int32, len(smallCorpus))
	for i, s := range smallCorpus {
		want[i] = h.Encode(s)
	}
	done := make(chan error, 8)
	for g := range 8 {
		go func() {
			for k := range 50 {
				i := (g + k) % len(smallCorpus)
				if got := h.Encode(smallCorpus[i]); !slices.Equal(got, want[i]) {
					done <- fmt.Errorf("goroutine %d: %q encoded differently", g, smallCorpus[i])
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
