package quality

import (
	"context"
	"fmt"
	"io"
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
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
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

// tableRig holds what every row of the quality tables shares: the Dolly
// split, the base generator's embedder, the reference embeddings and the
// word list, and writes rows.
type tableRig struct {
	t                *testing.T
	train, reference []string
	tok              *tokenizer.Tokenizer
	emb              *embed.Model
	refE, trainE     [][]float32
	words            *textstats.WordList
}

func newTableRig(t *testing.T) *tableRig {
	t.Helper()
	ctx := context.Background()
	prompts := dollyPrompts(t)
	rng := rand.New(rand.NewPCG(21, 21))
	rng.Shuffle(len(prompts), func(i, j int) { prompts[i], prompts[j] = prompts[j], prompts[i] })
	half := len(prompts) / 2
	r := &tableRig{t: t, train: prompts[:min(tableTrain, half)], reference: prompts[half : half+tableReference]}
	base, tok := baseModel(t)
	r.tok, r.emb = tok, embed.NewModel(base, tok)
	var err error
	if r.refE, err = r.emb.Embed(ctx, r.reference); err != nil {
		t.Fatal(err)
	}
	if r.trainE, err = r.emb.Embed(ctx, r.train); err != nil {
		t.Fatal(err)
	}
	if r.words, err = textstats.LoadWordList(textstats.DefaultWordListPath); err != nil {
		t.Fatalf("the spelling column needs Debian's word list (make wordlist): %v", err)
	}
	t.Logf("reference spelling clean share: %.1f%%", 100*r.words.Spelling(r.reference).CleanShare)
	return r
}

// row filters pool with the fixed evaluation noise (so rows are
// comparable) and returns the table line: MAUVE and spelling before and
// after the filter.
func (r *tableRig) row(name string, pool []string, histSigma float64, note string) string {
	t := r.t
	t.Helper()
	ctx := context.Background()
	poolE, err := r.emb.Embed(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	noise := rand.New(rand.NewChaCha8([32]byte{9}))
	res, err := filter.Run(ctx, poolE, r.trainE, filter.Options{Clusters: tableClusters, HistogramSigma: histSigma, Output: tableOut, Seed: 4, Noise: noise})
	if err != nil {
		t.Fatal(err)
	}
	mopts := mauve.Options{Seeds: []uint64{1, 2, 3, 4, 5}}
	perm := rand.New(rand.NewPCG(8, 8)).Perm(len(pool))[:min(len(pool), len(res.Selected))]
	before, err := mauve.Compute(ctx, r.refE, rows(poolE, perm), mopts)
	if err != nil {
		t.Fatal(err)
	}
	after, err := mauve.Compute(ctx, r.refE, rows(poolE, res.Selected), mopts)
	if err != nil {
		t.Fatal(err)
	}
	spelled := func(idx []int) float64 {
		texts := make([]string, len(idx))
		for i, j := range idx {
			texts[i] = pool[j]
		}
		return 100 * r.words.Spelling(texts).CleanShare
	}
	line := fmt.Sprintf("| %s | %.3f +- %.3f | %.1f%% | %.3f +- %.3f | %.1f%% | %d | %s |", name,
		before.Mauve, before.MauveStd, spelled(perm), after.Mauve, after.MauveStd, spelled(res.Selected), len(res.Selected), note)
	t.Log(line)
	return line
}

// dpRun fine-tunes a fresh copy of the base generator on the training half
// under plan and returns its pool (Run also filters; the tables re-filter
// with the fixed evaluation noise). seeds, when not nil, fixes every draw
// of the run (evaluation only).
func (r *tableRig) dpRun(plan dpwindow.Plan, seeds io.Reader) []string {
	t := r.t
	t.Helper()
	m, _ := baseModel(t)
	out, err := dpwindow.Run(context.Background(), m, r.tok, func([]string) (embed.Embedder, error) { return r.emb, nil }, r.train, nil, plan,
		dpwindow.Config{ExpectedBatch: 64, Epochs: 2, SeqLen: 32, HistogramSigma: plan.HistogramSigma, PoolFactor: float64(tablePool) / float64(len(r.train)),
			OutputFactor: float64(tableOut) / float64(len(r.train)), Clusters: tableClusters, Seeds: seeds}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out.Pool
}

// requireTableRun skips a table test unless the environment variable env
// is 1 (the tables take minutes), and under -race.
func requireTableRun(t *testing.T, env, takes string) {
	t.Helper()
	if os.Getenv(env) != "1" {
		t.Skipf("set %s=1 (%s)", env, takes)
	}
	if racebuild.Enabled {
		t.Skip("not under -race")
	}
}

// tablePlanConfig is the DP rows' window configuration.
func tablePlanConfig(accountant string) dpwindow.Config {
	return dpwindow.Config{ExpectedBatch: 64, Epochs: 2, SeqLen: 32, HistogramSigma: tableHistSigma, Accountant: accountant}
}

// TestQualityTable fills docs/QUALITY.md's main table: MAUVE against held-out
// Dolly prompts of (a) the public base generator, (b) DP fine-tuned
// generators at total epsilon 1, 4 and 8 (DP-SGD and the filter's histogram
// composed, calibrated by the default accountant), and (c) a non-private
// fine-tune (evaluation only), each before and after the filter. It takes
// about 10 minutes on 2 cores, so it runs only when
// DPINSTRUCT_QUALITY_TABLE=1:
//
//	DPINSTRUCT_QUALITY_TABLE=1 go test -run TestQualityTable -v -timeout 2h ./models/quality/
func TestQualityTable(t *testing.T) {
	requireTableRun(t, "DPINSTRUCT_QUALITY_TABLE", "about 10 minutes")
	r := newTableRig(t)
	base, _ := baseModel(t)
	var table []string
	start := time.Now()
	pool, st, err := synth.Sample(context.Background(), base, r.tok, tablePool, synth.Options{SampleOptions: lm.SampleOptions{Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sampled %d of %d drawn in %s", len(pool), st.Drawn, time.Since(start).Round(time.Second))
	// (a) the public base generator; the filter's histogram alone is charged.
	table = append(table, r.row("(a) public base generator", pool, tableHistSigma, "filter only"))

	for _, eps := range []float64{1, 4, 8, 0} {
		name := fmt.Sprintf("(b) DP fine-tuned, total epsilon %g", eps)
		histSigma := tableHistSigma
		var plan dpwindow.Plan
		if eps == 0 {
			// Evaluation only: no noise, no clipping bound that matters, exact histogram.
			name, histSigma = "(c) non-private fine-tune (reference only)", 0
			if plan, err = dpwindow.MakePlan(tablePlanConfig("rdp"), len(r.train), 1e6, tableDelta); err != nil {
				t.Fatal(err)
			}
			plan.NoiseMultiplier, plan.HistogramSigma, plan.Clip = 0, 0, 1e6
		} else if plan, err = dpwindow.MakePlan(tablePlanConfig(""), len(r.train), eps, tableDelta); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		pool := r.dpRun(plan, nil)
		note := fmt.Sprintf("q %.3f, %d steps, sigma %.3f, sigma_h %g: epsilon %.3f (SGD alone %.3f, histogram alone %.3f) at delta %g, %s; %s",
			plan.SampleRate, plan.Steps, plan.NoiseMultiplier, plan.HistogramSigma, plan.Epsilon, plan.SGDEpsilon, plan.HistogramEpsilon, plan.Delta,
			plan.Accountant, time.Since(start).Round(time.Second))
		if eps == 0 {
			note = fmt.Sprintf("q %.3f, %d steps, no noise, exact histogram; %s", plan.SampleRate, plan.Steps, time.Since(start).Round(time.Second))
		}
		table = append(table, r.row(name, pool, histSigma, note))
	}
	t.Logf("\n| generator | MAUVE before the filter | spelling before | after the filter | spelling after | selected | settings |\n|---|---|---|---|---|---|---|\n%s", strings.Join(table, "\n"))
}

// TestAccountantQualityGain fills docs/QUALITY.md's accountant comparison:
// at total epsilon 1 and 4, the DP rows' window calibrated by the RDP
// accountant and by the PLD accountant (the default), trained and sampled
// on the same seeds (Config.Seeds: every draw of the two runs is the same
// but the noise multiplier), so the difference is the noise alone. About 11
// minutes on 2 cores; runs only when DPINSTRUCT_ACCOUNTANT_TABLE=1:
//
//	DPINSTRUCT_ACCOUNTANT_TABLE=1 go test -run TestAccountantQualityGain -v -timeout 1h ./models/quality/
func TestAccountantQualityGain(t *testing.T) {
	requireTableRun(t, "DPINSTRUCT_ACCOUNTANT_TABLE", "about 11 minutes")
	r := newTableRig(t)
	var table []string
	for _, eps := range []float64{1, 4} {
		for _, accountant := range []string{"rdp", "pld"} {
			plan, err := dpwindow.MakePlan(tablePlanConfig(accountant), len(r.train), eps, tableDelta)
			if err != nil {
				t.Fatal(err)
			}
			seed := [32]byte{byte(eps)}
			pool := r.dpRun(plan, rand.NewChaCha8(seed))
			name := fmt.Sprintf("epsilon %g, %s", eps, accountant)
			note := fmt.Sprintf("sigma %.4f; epsilon %.3f, true epsilon >= %.3f (accountant error %.3f)", plan.NoiseMultiplier, plan.Epsilon, plan.EpsilonLower, plan.AccountantError)
			table = append(table, r.row(name, pool, tableHistSigma, note))
		}
	}
	t.Logf("\n| window | MAUVE before the filter | spelling before | after the filter | spelling after | selected | noise and accounting |\n|---|---|---|---|---|---|---|\n%s", strings.Join(table, "\n"))
}
