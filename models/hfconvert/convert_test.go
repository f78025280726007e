package hfconvert

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/llama2c"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// convert writes ck and tok to a fresh folder and returns it.
func convert(t testing.TB, ck *llama2c.Checkpoint, tok *llama2c.Tokenizer) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "hf")
	if err := FromLlama2c(ck, tok, dir); err != nil {
		t.Fatalf("FromLlama2c: %v", err)
	}
	return dir
}

// compareLogits runs tokens through llama2c's Forward and through the HF
// oracle on the converted folder and checks the max abs difference.
func compareLogits(t *testing.T, ck *llama2c.Checkpoint, dir string, tokens []int) {
	t.Helper()
	hf := loadHFLlama(t, dir).logits(t, tokens)
	s := ck.NewState()
	var worst float64
	for pos, tok := range tokens {
		want := ck.Forward(s, tok, pos)
		if len(hf[pos]) != len(want) {
			t.Fatalf("pos %d: %d logits, want %d", pos, len(hf[pos]), len(want))
		}
		for i := range want {
			worst = max(worst, math.Abs(float64(hf[pos][i]-want[i])))
		}
	}
	t.Logf("%d positions, max |HF - llama2c| logit = %.3g", len(tokens), worst)
	if worst > 1e-4 {
		t.Errorf("max abs logit difference %.3g > 1e-4: the weight layout is wrong", worst)
	}
}

func TestLogitsMatchSynthetic(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  llama2c.Config
	}{
		{"shared classifier, GQA", llama2c.Config{Dim: 32, Hidden: 48, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 300, SeqLen: 16, SharedClassifier: true}},
		{"separate classifier, MHA", llama2c.Config{Dim: 24, Hidden: 40, Layers: 3, Heads: 2, KVHeads: 2, Vocab: 300, SeqLen: 16}},
		{"separate classifier, MQA", llama2c.Config{Dim: 32, Hidden: 20, Layers: 1, Heads: 4, KVHeads: 1, Vocab: 300, SeqLen: 12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ck := synthCheckpoint(t, tc.cfg, 7)
			dir := convert(t, ck, synthTokenizer(t, tc.cfg.Vocab))
			f, err := ReadSafetensorsFile(filepath.Join(dir, WeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			_, hasHead := f.Tensors["lm_head.weight"]
			if hasHead == tc.cfg.SharedClassifier {
				t.Errorf("lm_head.weight present = %v with SharedClassifier %v", hasHead, tc.cfg.SharedClassifier)
			}
			if want := 2 + 9*tc.cfg.Layers + btoi(!tc.cfg.SharedClassifier); len(f.Tensors) != want {
				t.Errorf("%d tensors, want %d: %v", len(f.Tensors), want, f.Names())
			}
			tokens := make([]int, tc.cfg.SeqLen)
			for i := range tokens {
				tokens[i] = (i*37 + 5) % tc.cfg.Vocab
			}
			compareLogits(t, ck, dir, tokens)
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestLogitsMatchStories260K(t *testing.T) {
	ck, tok := loadStories260K(t)
	dir := convert(t, ck, tok)
	tokens := append([]int{llama2c.BOS}, tok.Encode("Once upon a time, there was a little girl named Lily.", false, false)...)
	compareLogits(t, ck, dir, tokens)
}

// TestPermuteRoPEOrder pins the row order within a head: HF row j takes
// run.c row 2j for j < hs/2 and 2(j-hs/2)+1 after.
func TestPermuteRoPEOrder(t *testing.T) {
	const heads, hs = 2, 6
	w := make([]float32, heads*hs)
	for i := range w {
		w[i] = float32(i)
	}
	got := permuteRoPE(w, heads, hs, 1)
	want := []float32{0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("permuteRoPE = %v, want %v", got, want)
		}
	}
}

func TestConfigGoldenStories260K(t *testing.T) {
	ck, tok := loadStories260K(t)
	dir := convert(t, ck, tok)
	for _, name := range []string{ConfigFile, TokenizerConfigFile} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", "stories260K."+name)
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from %s:\n%s", name, golden, got)
		}
	}
	var cfg map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["rope_theta"] != 10000.0 || cfg["rms_norm_eps"] != 1e-5 {
		t.Errorf("rope_theta %v, rms_norm_eps %v", cfg["rope_theta"], cfg["rms_norm_eps"])
	}
}

func TestFromLlama2cErrors(t *testing.T) {
	cfg := llama2c.Config{Dim: 8, Hidden: 8, Layers: 1, Heads: 2, KVHeads: 1, Vocab: 270, SeqLen: 4, SharedClassifier: true}
	good := func() *llama2c.Checkpoint { return synthCheckpoint(t, cfg, 1) }
	tok := synthTokenizer(t, cfg.Vocab)
	for _, tc := range []struct {
		name string
		ck   *llama2c.Checkpoint
		tok  *llama2c.Tokenizer
		want string
	}{
		{"nil checkpoint", nil, tok, "nil"},
		{"nil tokenizer", good(), nil, "nil"},
		{"vocab mismatch", good(), synthTokenizer(t, 280), "tokenizer has 280"},
		{"short tensor", func() *llama2c.Checkpoint { c := good(); c.W2 = c.W2[1:]; return c }(), tok, "W2 has"},
		{"odd head", func() *llama2c.Checkpoint { c := good(); c.Config.Heads = 8; return c }(), tok, "invalid llama2c config"},
		{"duplicate piece", good(), func() *llama2c.Tokenizer {
			t2 := synthTokenizer(t, cfg.Vocab)
			t2.Vocab[262] = t2.Vocab[263]
			return t2
		}(), "are both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := FromLlama2c(tc.ck, tc.tok, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if err := FromLlama2c(good(), tok, filepath.Join(t.TempDir(), "a", "b")); err != nil {
		t.Errorf("nested outDir: %v", err)
	}
}

// TestLogitsNeedPermutation is the negative control of the logits test:
// the same folder with q/k rows left in run.c's order must not match, so
// the match above is evidence of the permutation, not an accident of a
// model whose RoPE does not matter.
func TestLogitsNeedPermutation(t *testing.T) {
	cfg := llama2c.Config{Dim: 32, Hidden: 48, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 300, SeqLen: 8, SharedClassifier: true}
	ck := synthCheckpoint(t, cfg, 3)
	dir := convert(t, ck, synthTokenizer(t, cfg.Vocab))
	m := loadHFLlama(t, dir)
	hs := cfg.HeadSize()
	for l := range cfg.Layers {
		p := "model.layers." + strconv.Itoa(l) + ".self_attn."
		q, kv := cfg.Heads*hs, cfg.KVDim()
		m.w[p+"q_proj.weight"] = ck.WQ[l*q*cfg.Dim : (l+1)*q*cfg.Dim]
		m.w[p+"k_proj.weight"] = ck.WK[l*kv*cfg.Dim : (l+1)*kv*cfg.Dim]
	}
	tokens := []int{1, 50, 99, 270, 5, 6, 7, 8}
	hf := m.logits(t, tokens)
	s := ck.NewState()
	var worst float64
	for pos, tok := range tokens {
		want := ck.Forward(s, tok, pos)
		for i := range want {
			worst = max(worst, math.Abs(float64(hf[pos][i]-want[i])))
		}
	}
	if worst < 1e-2 {
		t.Errorf("unpermuted q/k still match (max diff %.3g): the logits test cannot see the RoPE layout", worst)
	}
}
