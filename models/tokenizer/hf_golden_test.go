package tokenizer

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dpinstruct/dpinstruct/internal/shared"
)

// The goldens under testdata/hf are HF's JavaScript tokenizers' encodings
// (testdata/hf_goldens.mjs) of the texts hf_texts.json names: public
// prompts, read here from the shared data, and hand-written edge cases.

// hfTokenizersDir locates ../shared/models/tokenizers
// ($DPINSTRUCT_HF_TOKENIZERS), or skips.
func hfTokenizersDir(tb testing.TB) string {
	tb.Helper()
	d := shared.Path("DPINSTRUCT_HF_TOKENIZERS", "models", "tokenizers")
	if _, err := os.Stat(d); err != nil {
		tb.Skipf("HF tokenizers not found at %s (set DPINSTRUCT_HF_TOKENIZERS): %v", d, err)
	}
	return d
}

type hfTextSpec struct {
	Sources []struct {
		File  string `json:"file"`
		Count int    `json:"count"`
	} `json:"sources"`
	Edge []string `json:"edge"`
}

type hfText struct {
	src, text string
}

// hfGoldenTexts reads the texts in the order hf_goldens.mjs does: the first
// count lines with a string "text" of each source, then the edge cases,
// then the random strings.
func hfGoldenTexts(t testing.TB) []hfText {
	t.Helper()
	var spec hfTextSpec
	data, err := os.ReadFile(filepath.Join("testdata", "hf_texts.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	pub := publicDir(t)
	var out []hfText
	for _, s := range spec.Sources {
		data, err := os.ReadFile(filepath.Join(pub, s.File))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for ln, line := range strings.Split(string(data), "\n") {
			if n == s.Count {
				break
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			var rec struct {
				Text *string `json:"text"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("%s:%d: %v", s.File, ln+1, err)
			}
			if rec.Text == nil {
				continue
			}
			out = append(out, hfText{src: fmt.Sprintf("%s:%d", s.File, ln+1), text: *rec.Text})
			n++
		}
	}
	for k, e := range spec.Edge {
		out = append(out, hfText{src: fmt.Sprintf("edge:%d", k), text: e})
	}
	var random []string
	data, err = os.ReadFile(filepath.Join("testdata", "hf_random_texts.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &random); err != nil {
		t.Fatal(err)
	}
	for k, r := range random {
		out = append(out, hfText{src: fmt.Sprintf("random:%d", k), text: r})
	}
	return out
}

type hfGolden struct {
	I            int     `json:"i"`
	Src          string  `json:"src"`
	SHA256       string  `json:"sha256"`
	IDs          []int32 `json:"ids"`
	DecodeSHA256 string  `json:"decode_sha256"`
	RT           bool    `json:"rt"`
	Decode       *string `json:"decode"`
}

func readHFGoldens(t *testing.T, name string) []hfGolden {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "hf", name+".jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []hfGolden
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var g hfGolden
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, g)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// hfGoldenNames are the real tokenizers the goldens cover.
var hfGoldenNames = []string{"SmolLM2-135M-Instruct", "Mistral-7B-v0.1", "Qwen2.5-0.5B-Instruct"}

// TestHFGoldens requires, for every text and each real tokenizer, the ids
// HF's JS tokenizers give, and the same decoding (compared by hash; the
// edge cases' decodings are in the goldens as text).
func TestHFGoldens(t *testing.T) {
	dir := hfTokenizersDir(t)
	texts := hfGoldenTexts(t)
	for _, name := range hfGoldenNames {
		t.Run(name, func(t *testing.T) {
			h, err := LoadHF(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			golden := readHFGoldens(t, name)
			if len(golden) != len(texts) {
				t.Fatalf("%d goldens for %d texts: regenerate with testdata/hf_goldens.mjs", len(golden), len(texts))
			}
			idFail, decFail := 0, 0
			for i, g := range golden {
				tx := texts[i]
				if g.I != i || g.Src != tx.src || g.SHA256 != sha256Hex(tx.text) {
					t.Fatalf("golden %d (%s) does not match text %s (hash or position): the public data or hf_texts.json changed; regenerate", i, g.Src, tx.src)
				}
				ids := h.Encode(tx.text)
				if !slices.Equal(ids, g.IDs) && !(len(ids) == 0 && len(g.IDs) == 0) {
					idFail++
					if idFail <= 5 {
						t.Errorf("%s: ids differ\n go: %v\n hf: %v", tx.src, head(ids, 40), head(g.IDs, 40))
					}
				}
				if g.RT && h.Decode(ids) != tx.text {
					t.Errorf("%s: Decode(Encode(s)) != s, while HF's round-trips", tx.src)
				}
				dec := h.Decode(g.IDs)
				if sha256Hex(dec) != g.DecodeSHA256 || (g.RT && dec != tx.text) {
					decFail++
					if decFail <= 5 {
						want := "(hash only)"
						if g.Decode != nil {
							want = fmt.Sprintf("%q", *g.Decode)
						}
						t.Errorf("%s: decode differs: go %q, hf %s", tx.src, head([]rune(dec), 80), want)
					}
				}
			}
			t.Logf("%s: ids %d/%d identical, decode %d/%d identical", name, len(golden)-idFail, len(golden), len(golden)-decFail, len(golden))
		})
	}
}

func head[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// BenchmarkHFEncode encodes the golden texts (cold cache each round).
func BenchmarkHFEncode(b *testing.B) {
	dir := hfTokenizersDir(b)
	texts := hfGoldenTexts(b)
	n := 0
	for _, tx := range texts {
		n += len(tx.text)
	}
	for _, name := range hfGoldenNames {
		b.Run(name, func(b *testing.B) {
			h, err := LoadHF(filepath.Join(dir, name))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(n))
			for b.Loop() {
				h.mu.Lock()
				clear(h.cache)
				h.mu.Unlock()
				for _, tx := range texts {
					h.Encode(tx.text)
				}
			}
		})
	}
}
