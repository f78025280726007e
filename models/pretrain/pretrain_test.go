package pretrain

import (
	"context"
	"errors"
	"fmt"
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
