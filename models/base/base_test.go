package base

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// load loads the shipped model and its tokenizer.
func load(tb testing.TB) (*lm.Model, *tokenizer.Tokenizer) {
	tb.Helper()
	m, tok, err := Open("")
	if err != nil {
		tb.Fatal(err)
	}
	return m, tok
}

func TestShippedModelMatchesItsTokenizerAndSamples(t *testing.T) {
	m, tok := load(t)
	cfg := m.Config()
	if cfg.VocabSize != tok.VocabSize() || cfg.EOS != tok.EOS() {
		t.Fatalf("model vocab %d / eos %d, tokenizer %d / %d", cfg.VocabSize, cfg.EOS, tok.VocabSize(), tok.EOS())
	}
	if _, adapters := m.NumParams(); adapters != 0 {
		t.Errorf("the base model ships with %d adapter parameters, want none", adapters)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seqs, err := m.Generate(ctx, 4, lm.SampleOptions{Seed: 1, BatchSize: 4, MaxTokens: 24})
	if err != nil {
		t.Fatal(err)
	}
	nonEmpty := 0
	for _, s := range seqs {
		if strings.TrimSpace(tok.Decode(s)) != "" {
			nonEmpty++
		}
	}
	if len(seqs) != 4 || nonEmpty == 0 {
		t.Errorf("got %d samples, %d non-empty", len(seqs), nonEmpty)
	}
}
