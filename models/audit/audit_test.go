package audit

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/dpinstruct/dpinstruct/internal/racebuild"
	"github.com/dpinstruct/dpinstruct/models/base"
	"github.com/dpinstruct/dpinstruct/models/corpus"
	"github.com/dpinstruct/dpinstruct/models/dpwindow"
	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/pretrain"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// auditSettings is the audit docs/PRIVACY.md reports: 500 Dolly prompts plus
// canaries repeated 1, 10 and 100 times, three epochs of DP-Adam on LoRA
// adapters, a pool of twice the window.
func auditSettings(dp bool) Config {
	return Config{Seed: 17, Epsilon: 4, Delta: 1e-6, DP: dp,
		Method: dpwindow.Config{ExpectedBatch: 32, Epochs: 3, SeqLen: 16, PoolFactor: 2, Clusters: 20}}
}

func runAudit(t *testing.T, cfg Config) *Result {
	t.Helper()
	dolly, err := corpus.ReadVisible(context.Background(), corpus.DollyPrompts())
	if err != nil {
		t.Skipf("Dolly prompts not found (set DPINSTRUCT_DATA): %v", err)
	}
	dir, cleanup, err := base.Extract()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	tok, err := tokenizer.Load(filepath.Join(dir, pretrain.TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	load := func() (*lm.Model, error) { return lm.Load(dir) }
	lexical := func(pool []string) (embed.Embedder, error) {
		l := embed.NewLexical(embed.LexicalOptions{})
		return l, l.Fit(context.Background(), pool)
	}
	res, err := Run(context.Background(), load, tok, lexical, dolly[:500], cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Canaries {
		t.Logf("dp=%v repeats=%3d rank=%5d exposure=%5.2f bits (max measurable %.2f, chance %.2f) in_pool=%v released=%v",
			res.DP, c.Repeats, c.Rank, c.Exposure, res.MaxMeasurable, res.ChanceExposure, c.InPool, c.Released)
	}
	t.Logf("dp=%v records=%d pool=%d released=%d plan=%s", res.DP, res.Records, res.Pool, res.Released, res.Plan.JSON())
	return res
}

// TestAuditCanFailWithoutDP: without noise the generator memorises the
// canary planted 100 times (exposure near the measurable maximum), so the
// audit is able to detect leakage.
func TestAuditCanFailWithoutDP(t *testing.T) {
	if testing.Short() || racebuild.Enabled {
		t.Skip("minutes of training; make test runs it without -race")
	}
	res := runAudit(t, auditSettings(false))
	if c := res.Canaries[2]; c.Exposure < 0.8*res.MaxMeasurable {
		t.Errorf("without DP the canary repeated %d times has exposure %.2f bits, want near %.2f: the audit cannot fail",
			c.Repeats, c.Exposure, res.MaxMeasurable)
	}
}

// TestAuditDPKeepsExposureAtChance: the same window under DP at epsilon 4
// leaves every canary's exposure near chance, and no canary is released.
func TestAuditDPKeepsExposureAtChance(t *testing.T) {
	if testing.Short() || racebuild.Enabled {
		t.Skip("minutes of training; make test runs it without -race")
	}
	assertAtChance(t, runAudit(t, auditSettings(true)))
}

// assertAtChance fails if any canary was released or the canaries' mean
// exposure is clearly above chance. At chance each exposure is log2 of a
// uniform rank: mean 1.44 bits, above 6 bits with probability 1/64. The
// mean of three above 4 bits would be a clear signal.
func assertAtChance(t *testing.T, res *Result) {
	t.Helper()
	var sum float64
	for _, c := range res.Canaries {
		sum += c.Exposure
		if c.Released {
			t.Errorf("canary repeated %d times was released (unit %s)", c.Repeats, res.Plan.Unit)
		}
	}
	if mean := sum / float64(len(res.Canaries)); mean > 4 {
		t.Errorf("mean canary exposure %.2f bits under DP (unit %s), chance is %.2f", mean, res.Plan.Unit, res.ChanceExposure)
	}
}

// TestAuditUserLevelKeepsExposureAtChance: at user level every copy of a
// canary comes from one user, who keeps at most 4 records per window; even
// with duplicates kept, DP at epsilon 4 per user leaves every canary near
// chance and releases none.
func TestAuditUserLevelKeepsExposureAtChance(t *testing.T) {
	if testing.Short() || racebuild.Enabled {
		t.Skip("minutes of training; make test runs it without -race")
	}
	cfg := auditSettings(true)
	cfg.Method.Unit, cfg.Method.KeepDuplicates = "user", true
	res := runAudit(t, cfg)
	if res.Plan.Unit != "user" || res.Plan.Records != 503 {
		t.Errorf("plan unit %q over %d users, want user over 503 (500 background + 3 canary users)", res.Plan.Unit, res.Plan.Records)
	}
	assertAtChance(t, res)
}
