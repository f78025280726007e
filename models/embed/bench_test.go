package embed

import (
	"context"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/base"
	"github.com/dpinstruct/dpinstruct/models/corpus"
)

// dollyPrompts reads the Dolly prompts from the shared data folder (never
// copied into the repository), or skips.
func dollyPrompts(b *testing.B) []string {
	b.Helper()
	texts, err := corpus.ReadVisible(context.Background(), corpus.DollyPrompts())
	if err != nil || len(texts) == 0 {
		b.Skipf("benchmark data not found: %v", err)
	}
	return texts
}

// embedRate embeds texts with e until the benchmark ends and reports texts/s.
func embedRate(b *testing.B, e Embedder, texts []string) {
	b.Helper()
	ctx := context.Background()
	for b.Loop() {
		if _, err := e.Embed(ctx, texts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*float64(len(texts))/b.Elapsed().Seconds(), "texts/s")
}

func BenchmarkLexicalEmbed(b *testing.B) {
	texts := dollyPrompts(b)
	l := NewLexical(LexicalOptions{})
	// Fitting IDF on the benchmark texts is allowed here (a benchmark on
	// visible data) and makes it cover the IDF path.
	if err := l.Fit(context.Background(), texts); err != nil {
		b.Fatal(err)
	}
	embedRate(b, l, texts)
}

// BenchmarkModelEmbed embeds 1,024 Dolly prompts with the shipped base
// model (mean-pooled hidden states).
func BenchmarkModelEmbed(b *testing.B) {
	texts := dollyPrompts(b)[:1024]
	m, tok, err := base.Open("")
	if err != nil {
		b.Fatal(err)
	}
	embedRate(b, NewModel(m, tok), texts)
}
