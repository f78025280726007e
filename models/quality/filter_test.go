package quality

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/dpinstruct/dpinstruct/internal/racebuild"
	"github.com/dpinstruct/dpinstruct/models/base"
	"github.com/dpinstruct/dpinstruct/models/corpus"
	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/filter"
	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/mauve"
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
	m, tok, err := base.Open("")
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
	if racebuild.Enabled {
		t.Skip("minutes of GoMLX under the race detector; make test runs it without -race")
	}
	ctx := context.Background()
	prompts := dollyPrompts(t)
	rng := rand.New(rand.NewPCG(7, 7))
	rng.Shuffle(len(prompts), func(i, j int) { prompts[i], prompts[j] = prompts[j], prompts[i] })
	private := prompts[:windowSize]
	reference := prompts[windowSize : windowSize+referenceSize]

	m, tok := baseModel(t)
	pool, st, err := synth.Sample(ctx, m, tok, poolFactor*windowSize, synth.Options{SampleOptions: lm.SampleOptions{Seed: 11}})
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

	type embedded struct{ pool, private, reference [][]float32 }
	vecs := make([]embedded, len(embedders))
	for i, emb := range embedders {
		var err error
		for _, x := range []struct {
			texts []string
			out   *[][]float32
		}{{pool, &vecs[i].pool}, {private, &vecs[i].private}, {reference, &vecs[i].reference}} {
			if *x.out, err = emb.Embed(ctx, x.texts); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The unfiltered baseline: as many texts as the filter selects, drawn
	// uniformly from the pool.
	perm := rand.New(rand.NewPCG(5, 5)).Perm(len(pool))
	opts := mauve.Options{Seeds: []uint64{1, 2, 3, 4, 5}}
	for i, femb := range embedders {
		res, err := filter.Run(ctx, vecs[i].pool, vecs[i].private, filter.Options{
			Clusters: filterClusters, HistogramSigma: histSigma, Output: windowSize, Seed: 3,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range res.Selected {
			if j < 0 || j >= len(pool) {
				t.Fatalf("selected index %d is not in the pool", j)
			}
		}
		// Judge the selection in both feature spaces: the filter's own, and
		// the other one, which the filter never saw.
		for k, memb := range embedders {
			before, err := mauve.Compute(ctx, vecs[k].reference, rows(vecs[k].pool, perm[:len(res.Selected)]), opts)
			if err != nil {
				t.Fatal(err)
			}
			after, err := mauve.Compute(ctx, vecs[k].reference, rows(vecs[k].pool, res.Selected), opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("filter on %s, MAUVE on %s: epsilon %.3f (delta %g, sigma_h %g, %d clusters, %d short, %d selected): unfiltered %.4f +- %.4f, filtered %.4f +- %.4f",
				femb.Name(), memb.Name(), eps, delta, histSigma, res.Clusters, len(res.Short), len(res.Selected),
				before.Mauve, before.MauveStd, after.Mauve, after.MauveStd)
			if k == i && !(after.Mauve > before.Mauve) {
				t.Errorf("filter on %s: filtered MAUVE %.4f is not above unfiltered %.4f", femb.Name(), after.Mauve, before.Mauve)
			}
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
