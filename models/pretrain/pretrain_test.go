package pretrain

import (
	"time"

	"context"
	"errors"
	"fmt"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
	"github.com/gomlx/gomlx/core/tensors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/corpus"
	"github.com/dpinstruct/dpinstruct/models/lm"
)

func writeCorpus(t *testing.T, dir, name string, n int) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"text\":\"Write a short note about topic number %d and explain why it matters.\"}\n", i)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func tinyOptions(t *testing.T, out string, steps int) Options {
	t.Helper()
	dir := t.TempDir()
	return Options{
		Corpus: []string{writeCorpus(t, dir, "train.jsonl", 40)}, HeldOut: []string{writeCorpus(t, filepath.Join(dir, "held"), "held.jsonl", 8)},
		Out: out, VocabSize: 300, Context: 16, Layers: 1, Width: 16, Heads: 2, Steps: steps, BatchSize: 4, CheckpointEvery: 2,
	}
}

func TestRunResumesWhereItStopped(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	out := filepath.Join(t.TempDir(), "model")
	ctx := context.Background()
	first, err := Run(ctx, tinyOptions(t, out, 4))
	if err != nil {
		t.Fatal(err)
	}
	if first.Steps != 4 || first.ResumedAtStep != 0 || math.IsNaN(first.HeldOutPPL) || first.HeldOutPPL <= 1 {
		t.Fatalf("first run: %+v", first)
	}
	second, err := Run(ctx, tinyOptions(t, out, 8))
	if err != nil {
		t.Fatal(err)
	}
	if second.ResumedAtStep != 4 || second.Steps != 8 {
		t.Errorf("second run resumed at %d and ended at %d, want 4 and 8", second.ResumedAtStep, second.Steps)
	}
	if second.HeldOutPPL >= first.HeldOutPPL {
		t.Errorf("held-out perplexity did not fall: %.2f then %.2f", first.HeldOutPPL, second.HeldOutPPL)
	}
	st := readState(out)
	if st.Steps != 8 || st.HeldOutPPL != second.HeldOutPPL {
		t.Errorf("pretrain.json = %+v", st)
	}
	for _, f := range []string{lm.ConfigFile, lm.WeightsFile, lm.OptimizerFile, TokenizerFile, StateFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("model folder lacks %s", f)
		}
	}
}

func TestRunRefusesPrivateData(t *testing.T) {
	dolly := writeCorpus(t, filepath.Join(t.TempDir(), "dolly"), "prompts.jsonl", 3)
	_, err := Run(context.Background(), Options{Corpus: []string{dolly}, Out: t.TempDir()})
	if !errors.Is(err, corpus.ErrPrivate) {
		t.Fatalf("training on a dolly/ path: %v, want ErrPrivate", err)
	}
}

func TestRunNeedsCorpusAndOut(t *testing.T) {
	for _, o := range []Options{{Out: t.TempDir()}, {Corpus: []string{"x"}}} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) succeeded", o)
		}
	}
}

// sourceOf builds an encoded source of n texts of the given token length.
func sourceOf(t *testing.T, path string, n, length int) encodedSource {
	t.Helper()
	s := encodedSource{Source: Source{Path: path, Texts: n, Tokens: int64(n * length)}}
	for range n {
		s.seqs = append(s.seqs, make([]int32, length))
	}
	return s
}

func TestApplyCapsKeepsSharesUnderTheirCaps(t *testing.T) {
	cases := []struct {
		name      string
		sizes     map[string]int // texts of 10 tokens
		caps      map[string]float64
		wantShare map[string]float64 // approximate (texts are dropped whole)
		capped    map[string]bool
	}{
		{"binding caps", map[string]int{"qa": 900, "redteam": 300, "roleplay": 300},
			map[string]float64{"redteam": 0.05, "roleplay": 0.10},
			map[string]float64{"qa": 0.85, "redteam": 0.05, "roleplay": 0.10}, map[string]bool{"redteam": true, "roleplay": true}},
		{"a cap that does not bind", map[string]int{"qa": 900, "redteam": 30, "roleplay": 300},
			map[string]float64{"redteam": 0.05, "roleplay": 0.10},
			map[string]float64{"redteam": 30.0 / (30 + 900/0.9)}, map[string]bool{"roleplay": true}},
		{"no caps", map[string]int{"a": 10, "b": 30}, nil, map[string]float64{"a": 0.25, "b": 0.75}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var srcs []encodedSource
			for _, p := range []string{"qa", "redteam", "roleplay", "a", "b"} {
				if n, ok := tc.sizes[p]; ok {
					srcs = append(srcs, sourceOf(t, p, n, 10))
				}
			}
			if err := applyCaps(srcs, tc.caps, 1); err != nil {
				t.Fatal(err)
			}
			for _, s := range srcs {
				if c := tc.caps[s.Path]; c > 0 && s.Share > c+1e-12 {
					t.Errorf("%s: share %.4f above its cap %.2f", s.Path, s.Share, c)
				}
				if want, ok := tc.wantShare[s.Path]; ok && math.Abs(s.Share-want) > 0.01 {
					t.Errorf("%s: share %.4f, want about %.4f", s.Path, s.Share, want)
				}
				if s.Capped != tc.capped[s.Path] {
					t.Errorf("%s: capped %v, want %v", s.Path, s.Capped, tc.capped[s.Path])
				}
				if len(s.seqs) != s.KeptTexts {
					t.Errorf("%s: %d sequences kept, KeptTexts says %d", s.Path, len(s.seqs), s.KeptTexts)
				}
			}
		})
	}
}

func TestApplyCapsRejects(t *testing.T) {
	cases := []struct {
		name string
		caps map[string]float64
	}{
		{"unknown path", map[string]float64{"nope": 0.1}},
		{"share of 1", map[string]float64{"a": 1}},
		{"negative", map[string]float64{"a": -0.1}},
		{"caps fill everything", map[string]float64{"a": 0.6, "b": 0.5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srcs := []encodedSource{sourceOf(t, "a", 5, 3), sourceOf(t, "b", 5, 3)}
			if err := applyCaps(srcs, tc.caps, 1); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// TestCutTextsTrainNoEndOfText: a text longer than the context keeps
// context tokens, so lm.PackBatch fills its row with the text's own tokens
// and no end-of-text target; a text that fits ends with one.
func TestCutTextsTrainNoEndOfText(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("word ", 200)
	p := filepath.Join(dir, "t.jsonl")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("{\"text\":%q}\n{\"text\":\"short one\"}\n", long)), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := corpus.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, err := tokenizer.Train(ctx, r.Texts(ctx), tokenizer.TrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	const ctxLen = 16
	seqs, _, err := encodeAll(ctx, r, tok, ctxLen)
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs[0]) != ctxLen {
		t.Fatalf("long text kept %d tokens, want %d", len(seqs[0]), ctxLen)
	}
	cfg := lm.DefaultConfig(tok.VocabSize(), tok.EOS())
	cfg.Context = ctxLen
	_, tg, mk, err := lm.PackBatch(seqs, 2, ctxLen, cfg)
	if err != nil {
		t.Fatal(err)
	}
	targets, masks := tensors.MustCopyFlatData[int32](tg), tensors.MustCopyFlatData[float32](mk)
	for pos := range ctxLen {
		if masks[pos] == 1 && targets[pos] == tok.EOS() {
			t.Fatalf("the cut text trains an end-of-text target at position %d", pos)
		}
	}
	short := len(seqs[1])
	if targets[ctxLen+short] != tok.EOS() || masks[ctxLen+short] != 1 {
		t.Fatalf("the short text does not end with an end-of-text target")
	}
}

func TestRunRecordsSourcesAndStopsAtTheTimeBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	out := filepath.Join(t.TempDir(), "model")
	opts := tinyOptions(t, out, 1_000_000)
	extra := writeCorpus(t, t.TempDir(), "other.jsonl", 40)
	opts.Corpus = append(opts.Corpus, extra)
	opts.Caps = map[string]float64{extra: 0.2}
	opts.MaxTime = 2 * time.Second
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps == 0 || res.Steps >= opts.Steps {
		t.Fatalf("ran %d steps under a 2 s budget", res.Steps)
	}
	st := readState(out)
	if st.Steps != res.Steps || len(st.Sources) != 2 {
		t.Fatalf("state: %+v", st)
	}
	if s := st.Sources[1]; !s.Capped || s.Share > 0.2 {
		t.Errorf("capped source: %+v", s)
	}
	if math.IsNaN(res.HeldOutBitsPerChar) || res.HeldOutBitsPerChar <= 0 {
		t.Errorf("bits per char %v", res.HeldOutBitsPerChar)
	}
}
