package quality

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/internal/racebuild"
	"github.com/dpinstruct/dpinstruct/models/dpwindow"
	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/filter"
	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/mauve"
	"github.com/dpinstruct/dpinstruct/models/synth"
	"github.com/dpinstruct/dpinstruct/models/textstats"
)

// The quality table's settings (docs/QUALITY.md quotes them).
const (
	tableTrain     = 3200 // Dolly half that trains (the private stream)
	tableReference = 1600 // of the other half: what MAUVE compares with
	tablePool      = 6400 // synthetic pool per row (2x the training half)
	tableOut       = 1600 // texts judged per row, filtered or not
	tableClusters  = 50
	tableHistSigma = 10.0
	tableDelta     = 1e-6
)

// TestQualityTable fills docs/QUALITY.md's main table: MAUVE against held-out
// Dolly prompts of (a) the public base generator, (b) DP fine-tuned
// generators at total epsilon 1, 4 and 8 (DP-SGD and the filter's histogram
// composed), and (c) a non-private fine-tune (evaluation only), each before
// and after the filter. It takes about half an hour on 2 cores, so it runs
// only when DPINSTRUCT_QUALITY_TABLE=1:
//
//	DPINSTRUCT_QUALITY_TABLE=1 go test -run TestQualityTable -v -timeout 2h ./models/quality/
func TestQualityTable(t *testing.T) {
	if os.Getenv("DPINSTRUCT_QUALITY_TABLE") != "1" {
		t.Skip("set DPINSTRUCT_QUALITY_TABLE=1 (about 30 minutes)")
	}
	if racebuild.Enabled {
		t.Skip("not under -race")
	}
	ctx := context.Background()
	prompts := dollyPrompts(t)
	rng := rand.New(rand.NewPCG(21, 21))
	rng.Shuffle(len(prompts), func(i, j int) { prompts[i], prompts[j] = prompts[j], prompts[i] })
	half := len(prompts) / 2
	train := prompts[:min(tableTrain, half)]
	reference := prompts[half : half+tableReference]

	base, tok := baseModel(t)
	emb := embed.NewModel(base, tok)
	refE, err := emb.Embed(ctx, reference)
	if err != nil {
		t.Fatal(err)
	}
	trainE, err := emb.Embed(ctx, train)
	if err != nil {
		t.Fatal(err)
	}
	mopts := mauve.Options{Seeds: []uint64{1, 2, 3, 4, 5}}
	words, err := textstats.LoadWordList(textstats.DefaultWordListPath)
	if err != nil {
		t.Fatalf("the spelling column needs Debian's word list (make wordlist): %v", err)
	}
	t.Logf("reference spelling clean share: %.1f%%", 100*words.Spelling(reference).CleanShare)
	var table []string
	row := func(name string, pool []string, histSigma float64, note string) {
		t.Helper()
		poolE, err := emb.Embed(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		noise := rand.New(rand.NewChaCha8([32]byte{9}))
		res, err := filter.Run(ctx, poolE, trainE, filter.Options{Clusters: tableClusters, HistogramSigma: histSigma, Output: tableOut, Seed: 4, Noise: noise})
		if err != nil {
			t.Fatal(err)
		}
		perm := rand.New(rand.NewPCG(8, 8)).Perm(len(pool))[:min(len(pool), len(res.Selected))]
		before, err := mauve.Compute(ctx, refE, rows(poolE, perm), mopts)
		if err != nil {
			t.Fatal(err)
		}
		after, err := mauve.Compute(ctx, refE, rows(poolE, res.Selected), mopts)
		if err != nil {
			t.Fatal(err)
		}
		spelled := func(idx []int) float64 {
			texts := make([]string, len(idx))
			for i, j := range idx {
				texts[i] = pool[j]
			}
			return 100 * words.Spelling(texts).CleanShare
		}
		line := fmt.Sprintf("| %s | %.3f +- %.3f | %.1f%% | %.3f +- %.3f | %.1f%% | %d | %s |", name,
			before.Mauve, before.MauveStd, spelled(perm), after.Mauve, after.MauveStd, spelled(res.Selected), len(res.Selected), note)
		t.Log(line)
		table = append(table, line)
	}

	sample := func(m *lm.Model, seed uint64) []string {
		t.Helper()
		start := time.Now()
		pool, st, err := synth.Sample(ctx, m, tok, tablePool, synth.Options{SampleOptions: lm.SampleOptions{Seed: seed}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("sampled %d of %d drawn in %s", len(pool), st.Drawn, time.Since(start).Round(time.Second))
		return pool
	}
	// (a) the public base generator; the filter's histogram alone is charged.
	row("(a) public base generator", sample(base, 1), tableHistSigma, "filter only")

	cfg := dpwindow.Config{ExpectedBatch: 64, Epochs: 2, SeqLen: 32, HistogramSigma: tableHistSigma}
	for _, eps := range []float64{1, 4, 8, 0} {
		m, _ := baseModel(t)
		var plan dpwindow.Plan
		name := fmt.Sprintf("(b) DP fine-tuned, total epsilon %g", eps)
		histSigma := tableHistSigma
		if eps == 0 {
			// Evaluation only: no noise, no clipping bound that matters, exact histogram.
			name, histSigma = "(c) non-private fine-tune (reference only)", 0
			plan, err = dpwindow.MakePlan(cfg, len(train), 1e6, tableDelta)
			if err != nil {
				t.Fatal(err)
			}
			plan.NoiseMultiplier, plan.HistogramSigma, plan.Clip = 0, 0, 1e6
		} else {
			plan, err = dpwindow.MakePlan(cfg, len(train), eps, tableDelta)
			if err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		// Run trains and filters; the table re-filters its pool with the
		// fixed evaluation noise so rows are comparable.
		out, err := dpwindow.Run(ctx, m, tok, func([]string) (embed.Embedder, error) { return emb, nil }, train, nil, plan,
			dpwindow.Config{ExpectedBatch: 64, Epochs: 2, SeqLen: 32, HistogramSigma: plan.HistogramSigma, PoolFactor: float64(tablePool) / float64(len(train)),
				OutputFactor: float64(tableOut) / float64(len(train)), Clusters: tableClusters}, nil)
		if err != nil {
			t.Fatal(err)
		}
		note := fmt.Sprintf("q %.3f, %d steps, sigma %.3f, sigma_h %g: epsilon %.3f (SGD alone %.3f, histogram alone %.3f) at delta %g; %s",
			plan.SampleRate, plan.Steps, plan.NoiseMultiplier, plan.HistogramSigma, plan.Epsilon, plan.SGDEpsilon, plan.HistogramEpsilon, plan.Delta,
			time.Since(start).Round(time.Second))
		if eps == 0 {
			note = fmt.Sprintf("q %.3f, %d steps, no noise, exact histogram; %s", plan.SampleRate, plan.Steps, time.Since(start).Round(time.Second))
		}
		row(name, out.Pool, histSigma, note)
	}
	t.Logf("\n| generator | MAUVE before the filter | spelling before | after the filter | spelling after | selected | settings |\n|---|---|---|---|---|---|---|\n%s", strings.Join(table, "\n"))
}
