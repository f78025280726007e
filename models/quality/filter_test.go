package quality

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/base"
	"github.com/dpinstruct/dpinstruct/models/corpus"
	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/filter"
	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/mauve"
	"github.com/dpinstruct/dpinstruct/models/pretrain"
	"github.com/dpinstruct/dpinstruct/models/privacy"
	"github.com/dpinstruct/dpinstruct/models/synth"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// Settings of the filter experiment (docs/QUALITY.md quotes them).
const (
	windowSize     = 1000 // private Dolly prompts the filter votes with
	referenceSize  = 1000 // other Dolly prompts MAUVE compares against
	poolFactor     = 5    // synthetic pool = poolFactor x window
	filterClusters = 50
	histSigma      = 2.0
	delta          = 1e-6
)

// dollyPrompts reads the Dolly prompts or skips.
func dollyPrompts(t *testing.T) []string {
	t.Helper()
	texts, err := corpus.ReadVisible(context.Background(), corpus.DollyPrompts())
	if err != nil {
		t.Skipf("Dolly prompts not found (set DPINSTRUCT_DATA): %v", err)
	}
	return texts
}

func baseModel(t *testing.T) (*lm.Model, *tokenizer.Tokenizer) {
	t.Helper()
	dir, cleanup, err := base.Extract()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	m, err := lm.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(filepath.Join(dir, pretrain.TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

// TestFilterRaisesMAUVEOnDolly: the public base generator samples a pool
// of 5x the window; the DP filter (histogram noise sigma_h = 2, epsilon
// below 4 at delta 1e-6) resamples it against a private window of Dolly
// prompts; MAUVE against held-out Dolly prompts, averaged over 5 k-means
// seeds, must be higher after the filter than for an equally large
// unfiltered draw from the pool.
func TestFilterRaisesMAUVEOnDolly(t *testing.T) {
	if testing.Short() {
		t.Skip("samples 5,000 instructions: minutes")
	}
	if raceEnabled {
		t.Skip("minutes of GoMLX under the race detector; make test runs it without -race")
	}
	ctx := context.Background()
	prompts := dollyPrompts(t)
	rng := rand.New(rand.NewPCG(7, 7))
	rng.Shuffle(len(prompts), func(i, j int) { prompts[i], prompts[j] = prompts[j], prompts[i] })
	private := prompts[:windowSize]
	reference := prompts[windowSize : windowSize+referenceSize]

	m, tok := baseModel(t)
	pool, st, err := synth.Sample(ctx, m, tok, poolFactor*windowSize, synth.Options{SampleOptions: lm.SampleOptions{TopP: 0.95, Temperature: 1, Seed: 11}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pool: %d distinct of %d drawn in %s", len(pool), st.Drawn, st.Elapsed)
	if len(pool) < poolFactor*windowSize*9/10 {
		t.Fatalf("pool has %d texts", len(pool))
	}

	eps, err := privacy.GaussianEpsilon(histSigma, delta, 1)
	if err != nil {
		t.Fatal(err)
	}
	if eps > 4 {
		t.Fatalf("histogram epsilon %g > 4", eps)
	}
	embedders := []embed.Embedder{embed.NewModel(m, tok)}
	lex := embed.NewLexical(embed.LexicalOptions{})
	if err := lex.Fit(ctx, pool); err != nil { // synthetic texts only
		t.Fatal(err)
	}
	embedders = append(embedders, lex)

	for i, emb := range embedders {
		poolE, err := emb.Embed(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		privE, err := emb.Embed(ctx, private)
		if err != nil {
			t.Fatal(err)
		}
		refE, err := emb.Embed(ctx, reference)
		if err != nil {
			t.Fatal(err)
		}
		res, err := filter.Run(ctx, poolE, privE, filter.Options{
			Clusters: filterClusters, HistogramSigma: histSigma, Output: windowSize, Seed: 3,
		})
		if err != nil {
			t.Fatal(err)
		}
		selected := rows(poolE, res.Selected)
		// The unfiltered baseline: as many texts, drawn uniformly from the pool.
		uniform := rows(poolE, rand.New(rand.NewPCG(5, 5)).Perm(len(pool))[:len(res.Selected)])
		opts := mauve.Options{Seeds: []uint64{1, 2, 3, 4, 5}}
		before, err := mauve.Compute(ctx, refE, uniform, opts)
		if err != nil {
			t.Fatal(err)
		}
		after, err := mauve.Compute(ctx, refE, selected, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("embedding %s: epsilon %.3f (delta %g, sigma_h %g, %d clusters, %d short): MAUVE unfiltered %.4f +- %.4f, filtered %.4f +- %.4f (%d selected)",
			emb.Name(), eps, delta, histSigma, res.Clusters, len(res.Short), before.Mauve, before.MauveStd, after.Mauve, after.MauveStd, len(res.Selected))
		if i == 0 && !(after.Mauve > before.Mauve) {
			t.Errorf("%s: filtered MAUVE %.4f is not above unfiltered %.4f", emb.Name(), after.Mauve, before.Mauve)
		}
		if math.IsNaN(after.Mauve) {
			t.Errorf("%s: MAUVE is NaN", emb.Name())
		}
	}
}

func rows(x [][]float32, idx []int) [][]float32 {
	out := make([][]float32, len(idx))
	for i, j := range idx {
		out[i] = x[j]
	}
	return out
}
