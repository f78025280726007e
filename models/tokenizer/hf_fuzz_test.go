package tokenizer

import (
	"strings"
	"testing"
)

// Fuzz tests for every reader of outside input of the HF loader:
// tokenizer.json, vocab.json, merges.txt, tokenizer_config.json, and the
// pre-tokenizer scanners that every text goes through.

func FuzzHFTokenizerJSON(f *testing.F) {
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}`))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]],"byte_fallback":true},` +
		`"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},` +
		`"decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}}`))
	f.Add([]byte(`{"added_tokens":[{"id":3,"content":"<s>","special":true,"lstrip":true}],"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"],"unk_token":"a","fuse_unk":true},` +
		`"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"Metaspace"}]},"decoder":{"type":"Metaspace"}}`))
	f.Add([]byte(`{"normalizer":{"type":"NFC"},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":-1},"merges":["a"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := parseHFJSON(data)
		if err != nil {
			return
		}
		h, err := buildHF(file)
		if err != nil {
			return
		}
		for _, s := range []string{"", "ab a b", "<s> 12 ab\n\n", "\xff\u00e9\u2581"} {
			ids := h.Encode(s)
			for _, id := range ids {
				if id < 0 || int(id) >= h.VocabSize() {
					t.Fatalf("Encode(%q) gave id %d out of [0, %d)", s, id, h.VocabSize())
				}
			}
			_ = h.Decode(ids)
		}
	})
}

func FuzzHFVocabJSON(f *testing.F) {
	f.Add([]byte(`{"a":0,"b":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"a":1e40}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseVocabJSON(data)
		if err == nil && len(v) == 0 {
			t.Fatal("empty vocabulary accepted")
		}
	})
}

func FuzzHFMergesTxt(f *testing.F) {
	f.Add([]byte("#version: 0.2\nĠ t\na b\n"))
	f.Add([]byte("a b\r\n\nab c\n"))
	f.Add([]byte("abc\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		merges, err := parseMergesTxt(data)
		if err != nil {
			return
		}
		for _, m := range merges {
			if m[0] == "" || m[1] == "" || strings.Contains(m[0], " ") || strings.Contains(m[1], " ") {
				t.Fatalf("bad merge %q accepted", m)
			}
		}
	})
}

func FuzzHFConfig(f *testing.F) {
	f.Add([]byte(`{"tokenizer_class":"Qwen2Tokenizer","bos_token":null,"eos_token":"<|im_end|>","added_tokens_decoder":{"151643":{"content":"<|endoftext|>","special":true}}}`))
	f.Add([]byte(`{"bos_token":{"__type":"AddedToken","content":"<s>"},"eos_token_id":[1,2]}`))
	f.Add([]byte(`{"added_tokens_decoder":{"-1":{"content":"x"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c hfConfig
		if err := parseHFConfig(data, &c); err != nil {
			return
		}
		_, _ = tokenContent(c.BOSToken)
		_, _ = tokenContent(c.EOSToken)
		toks, err := addedFromConfig(c.AddedTokensDecoder)
		if err != nil {
			return
		}
		for _, tk := range toks {
			if tk.ID < 0 {
				t.Fatalf("negative id %d accepted", tk.ID)
			}
		}
	})
}

// FuzzHFSplitters checks that each pre-tokenizer scanner covers its input
// exactly, in order, with non-empty pieces.
func FuzzHFSplitters(f *testing.F) {
	for _, s := range []string{"", "Hello, world!", "I'LL  don't\r\n\n x", "  \t\ta1b22 333\u00a0\u0085\ufeff", "日本語😀 'ſ", "\xff\xfe a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		splitters := map[string]func(string, func(string)){
			"gpt2":   splitGPT2JS,
			"qwen2":  splitQwen2,
			"digits": func(s string, emit func(string)) { splitDigitsJS(s, true, emit) },
			"runs":   func(s string, emit func(string)) { splitDigitsJS(s, false, emit) },
		}
		for name, split := range splitters {
			var sb strings.Builder
			split(s, func(p string) {
				if p == "" {
					t.Fatalf("%s: empty piece in %q", name, s)
				}
				sb.WriteString(p)
			})
			if sb.String() != s {
				t.Fatalf("%s: pieces of %q join to %q", name, s, sb.String())
			}
		}
	})
}
