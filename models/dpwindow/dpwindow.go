package dpwindow

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/dpinstruct/dpinstruct/models/dpsgd"
	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/filter"
	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/privacy"
	"github.com/dpinstruct/dpinstruct/models/synth"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// Config is the method's settings for one window. Zero fields take the
// documented defaults (Defaults).
type Config struct {
	// ExpectedBatch is q*n, the mean Poisson batch (default 32).
	ExpectedBatch int
	// Epochs sets the steps: ceil(Epochs * n / ExpectedBatch) (default 1).
	Epochs float64
	// Clip is the per-example L2 clip bound C (default 1).
	Clip float64
	// LearningRate of DP-Adam (default 5e-3).
	LearningRate float64
	// SeqLen: tokens per training row, instruction then end of text
	// (default 32; longer instructions are cut).
	SeqLen int
	// HistogramSigma is the filter's noise std on cluster counts (default
	// 5). Larger costs less epsilon and leaves more for DP-SGD.
	HistogramSigma float64
	// PoolFactor: synthetic pool = PoolFactor x window records (default 5).
	PoolFactor float64
	// OutputFactor: n_out = OutputFactor x window records (default 1).
	OutputFactor float64
	// Clusters of the filter (0: pool/10, at most 1000).
	Clusters int
	// TopP and Temperature of sampling (defaults lm.DefaultTopP and
	// lm.DefaultTemperature).
	TopP, Temperature float64
	// LoRA adapters (default lm.DefaultLoRA()).
	LoRA *lm.LoRAConfig
	// KeepDuplicates trains on every record as it came. By default exact
	// duplicate texts in a window are trained on once: a secret sent many
	// times verbatim then weighs as one record, where record-level DP
	// would otherwise only give it the group guarantee k*epsilon. Dropping
	// duplicates is 1-stable (adding or removing a record changes the set
	// of distinct texts by at most one), so the guarantee is unchanged;
	// the sampling rate and steps still come from the record count
	// (metadata), never from the distinct count. The filter's histogram
	// still counts every record.
	KeepDuplicates bool
	// Unit is the privacy unit: "record" (default) or "user". At user
	// level each user keeps at most MaxPerUser records (chosen at random),
	// their records form one training row (joined by end-of-text tokens),
	// so Poisson sampling and clipping act on users, and each of a user's
	// records votes in the filter with weight 1/(their records): one user
	// moves the histogram by at most 1. The plan's Records is then the
	// number of users.
	Unit string
	// MaxPerUser bounds a user's records per window at user level
	// (default 4).
	MaxPerUser int
	// Accountant calibrates the DP-SGD noise and states the plan's
	// epsilons, DP-SGD and the histogram composed exactly: "pld" (default;
	// privacy.PLDNoiseForEpsilon, the tightest upper bound, about two
	// seconds per window), "prv" (calibrated to the PRV accountant's upper
	// bound: slightly more noise than pld) or "rdp" (the RDP accountant
	// with the improved conversion: a millisecond, and the most noise).
	Accountant string
	// Seeds, when set, supplies every random seed of the window (user
	// bounding, Poisson sampling, DP-SGD noise, adapter initialisation,
	// generation, the filter's clustering and histogram noise) instead of
	// crypto/rand, so that evaluations can run two settings on the same
	// draws (docs/QUALITY.md's accountant comparison). Noise whose seed is
	// known protects nothing: the connector never sets it, and nothing
	// produced with it may be released.
	Seeds io.Reader
}

// Defaults fills zero fields.
func (c Config) Defaults() Config {
	if c.ExpectedBatch == 0 {
		c.ExpectedBatch = 32
	}
	if c.Epochs == 0 {
		c.Epochs = 1
	}
	if c.Clip == 0 {
		c.Clip = 1
	}
	if c.LearningRate == 0 {
		c.LearningRate = 5e-3
	}
	if c.SeqLen == 0 {
		c.SeqLen = 32
	}
	if c.HistogramSigma == 0 {
		c.HistogramSigma = 5
	}
	if c.PoolFactor == 0 {
		c.PoolFactor = 5
	}
	if c.OutputFactor == 0 {
		c.OutputFactor = 1
	}
	if c.TopP == 0 {
		c.TopP = lm.DefaultTopP
	}
	if c.Temperature == 0 {
		c.Temperature = lm.DefaultTemperature
	}
	if c.Unit == "" {
		c.Unit = "record"
	}
	if c.Accountant == "" {
		c.Accountant = "pld"
	}
	if c.MaxPerUser == 0 {
		c.MaxPerUser = 4
	}
	if c.LoRA == nil {
		l := lm.DefaultLoRA()
		c.LoRA = &l
	}
	return c
}

// poolBatch is the decoding batch the pool is sampled with.
const poolBatch = 256

// Plan is a window's privacy plan, fixed before any record is read.
type Plan struct {
	Records         int     `json:"records"`
	SampleRate      float64 `json:"q"`
	Steps           int     `json:"steps"`
	NoiseMultiplier float64 `json:"sigma"`
	Clip            float64 `json:"clip"`
	HistogramSigma  float64 `json:"histogram_sigma"`
	// Epsilon is the composed epsilon at Delta (<= the target); the other
	// two are each mechanism alone, for the reader.
	Epsilon          float64 `json:"epsilon"`
	Delta            float64 `json:"delta"`
	SGDEpsilon       float64 `json:"sgd_epsilon"`
	HistogramEpsilon float64 `json:"histogram_epsilon"`
	Accountant       string  `json:"accountant"`
	// EpsilonLower is a lower bound on the true epsilon at Delta of the
	// composed mechanism (the PRV accountant's): the true value lies in
	// [EpsilonLower, Epsilon], and AccountantError = Epsilon - EpsilonLower
	// is how much the charged epsilon may overstate it.
	EpsilonLower    float64 `json:"epsilon_lower"`
	AccountantError float64 `json:"accountant_error"`
	// Unit is "record" or "user"; MaxPerUser the contribution bound at
	// user level (0 at record level).
	Unit       string `json:"unit"`
	MaxPerUser int    `json:"max_records_per_user,omitempty"`
}

// planTolerance is the relative tolerance of the noise calibration: the
// noise meets the target and is at most 0.1% above the smallest that does.
const planTolerance = 1e-3

// price states the plan's epsilons under the accountant (the composed one,
// DP-SGD alone and the histogram alone) and the PRV accountant's lower
// bound on the composed one.
func (p *Plan) price(accountant string) error {
	q, sigma, steps, delta, hist := p.SampleRate, p.NoiseMultiplier, p.Steps, p.Delta, p.HistogramSigma
	prv, err := privacy.PRVEpsilon(q, sigma, steps, delta, privacy.PRVOptions{HistogramSigma: hist})
	if err != nil {
		return fmt.Errorf("dpwindow: PRV epsilon of the plan: %w", err)
	}
	switch accountant {
	case "pld":
		p.Accountant = "pld-connect-dots"
		if p.SGDEpsilon, err = privacy.PLDEpsilon(q, sigma, steps, delta, privacy.PLDOptions{}); err == nil {
			p.Epsilon, err = privacy.PLDEpsilon(q, sigma, steps, delta, privacy.PLDOptions{HistogramSigma: hist})
		}
		if err == nil && hist > 0 {
			p.HistogramEpsilon, err = privacy.PLDEpsilon(1, hist, 1, delta, privacy.PLDOptions{})
		}
		if err != nil {
			return fmt.Errorf("dpwindow: PLD epsilon of the plan: %w", err)
		}
	case "prv":
		p.Accountant = "prv-upper"
		p.Epsilon = prv.Upper
		var sgd, h privacy.PRVResult
		if sgd, err = privacy.PRVEpsilon(q, sigma, steps, delta, privacy.PRVOptions{}); err == nil && hist > 0 {
			h, err = privacy.PRVEpsilon(1, hist, 1, delta, privacy.PRVOptions{})
		}
		if err != nil {
			return fmt.Errorf("dpwindow: PRV epsilon of the plan: %w", err)
		}
		p.SGDEpsilon, p.HistogramEpsilon = sgd.Upper, h.Upper
	default:
		p.Accountant = "rdp-improved"
		a := privacy.NewAccountant(nil, privacy.Improved)
		a.ComposeSGD(q, sigma, steps)
		p.SGDEpsilon, _ = a.Epsilon(delta)
		a.ComposeGaussian(hist)
		p.Epsilon, _ = a.Epsilon(delta)
		h := privacy.NewAccountant(nil, privacy.Improved)
		h.ComposeGaussian(hist)
		p.HistogramEpsilon, _ = h.Epsilon(delta)
	}
	p.EpsilonLower = math.Min(prv.Lower, p.Epsilon)
	p.AccountantError = p.Epsilon - p.EpsilonLower
	return nil
}

// JSON is the plan as the ledger's params.
func (p Plan) JSON() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// MakePlan calibrates a window of n records to (epsilon, delta).
func MakePlan(cfg Config, n int, epsilon, delta float64) (Plan, error) {
	cfg = cfg.Defaults()
	if n < 1 {
		return Plan{}, errors.New("dpwindow: empty window")
	}
	q := math.Min(1, float64(cfg.ExpectedBatch)/float64(n))
	steps := max(1, int(math.Ceil(cfg.Epochs*float64(n)/float64(cfg.ExpectedBatch))))
	var sigma float64
	var err error
	hist := cfg.HistogramSigma
	switch cfg.Accountant {
	case "rdp":
		sigma, err = privacy.NoiseForEpsilon(epsilon, delta, q, steps, privacy.Options{HistogramSigma: hist})
	case "pld":
		sigma, err = privacy.PLDNoiseForEpsilon(epsilon, delta, q, steps, planTolerance, privacy.PLDOptions{HistogramSigma: hist})
	case "prv":
		sigma, err = privacy.PRVNoiseForEpsilon(epsilon, delta, q, steps, planTolerance, privacy.PRVOptions{HistogramSigma: hist})
	default:
		return Plan{}, fmt.Errorf("dpwindow: accountant must be pld, prv or rdp, not %q", cfg.Accountant)
	}
	if err != nil {
		return Plan{}, fmt.Errorf("dpwindow: calibrating DP-SGD noise for epsilon %g (histogram sigma %g): %w", epsilon, hist, err)
	}
	p := Plan{Records: n, SampleRate: q, Steps: steps, NoiseMultiplier: sigma, Clip: cfg.Clip,
		HistogramSigma: hist, Delta: delta, Unit: cfg.Unit}
	switch cfg.Unit {
	case "record":
	case "user":
		p.MaxPerUser = cfg.MaxPerUser
	default:
		return Plan{}, fmt.Errorf("dpwindow: unit must be record or user, not %q", cfg.Unit)
	}
	if err := p.price(cfg.Accountant); err != nil {
		return Plan{}, err
	}
	if p.Epsilon > epsilon*(1+1e-9) {
		return Plan{}, fmt.Errorf("dpwindow: plan spends epsilon %g > target %g", p.Epsilon, epsilon)
	}
	return p, nil
}

// Output is what a window releases.
type Output struct {
	Texts    []string
	Clusters []int
	// Histogram is the DP estimate of the window's topic mix (publishable).
	Histogram []float64
	// Pool is every distinct synthetic text sampled (DP: a sample of the
	// fine-tuned generator); Short counts the clusters that ran out before
	// their quota.
	Pool  []string
	Short int
}

// Progress receives stage names and step counts (no private values).
type Progress interface {
	Stage(name string, total int)
	Advance(n int)
}

type noProgress struct{}

func (noProgress) Stage(string, int) {}
func (noProgress) Advance(int)       {}

// Run executes the plan on the window's texts: m must be a freshly loaded
// public base model (Run adds adapters to it and trains them), tok its
// tokenizer. emb embeds pool and window for the filter; it must be a
// per-text function that saw no private data (the base model's embedding,
// or a lexical one fitted on the pool). After Run, m holds the window's
// adapters (DP) and may be saved.
func Run(ctx context.Context, m *lm.Model, tok *tokenizer.Tokenizer, emb func(pool []string) (embed.Embedder, error),
	texts, users []string, plan Plan, cfg Config, prog Progress) (*Output, error) {
	cfg = cfg.Defaults()
	if prog == nil {
		prog = noProgress{}
	}
	ctxLen := m.Config().Context
	seqLen := min(cfg.SeqLen, ctxLen)
	var records [][]int32
	voters, weights := texts, []float64(nil)
	switch cfg.Unit {
	case "record":
		if len(texts) != plan.Records {
			return nil, fmt.Errorf("dpwindow: plan is for %d records, window has %d", plan.Records, len(texts))
		}
		train := texts
		if !cfg.KeepDuplicates {
			train = distinct(texts)
		}
		records = make([][]int32, len(train))
		for i, s := range train {
			// Up to seqLen tokens: a longer text fills its row and trains
			// no end-of-text target (lm.PackBatch), since it does not end
			// there; one that fits (at most seqLen-1) ends with one.
			records[i] = truncate(tok.Encode(s), seqLen)
		}
	case "user":
		if len(users) != len(texts) {
			return nil, fmt.Errorf("dpwindow: %d user ids for %d records", len(users), len(texts))
		}
		groups := BoundUsers(texts, users, cfg.MaxPerUser, rand.New(rand.NewChaCha8(seed32(cfg.Seeds))))
		if len(groups) != plan.Records {
			return nil, fmt.Errorf("dpwindow: plan is for %d users, window has %d", plan.Records, len(groups))
		}
		// One row per user: each record cut to an equal share of the
		// context, joined by end-of-text, so the row's loss is the sum of
		// the user's record losses and clipping the row clips the user.
		per := max(2, ctxLen/cfg.MaxPerUser)
		seqLen = min(ctxLen, per*cfg.MaxPerUser)
		voters = voters[:0:0]
		for _, g := range groups {
			var row []int32
			for j, s := range g {
				if j > 0 {
					row = append(row, m.Config().EOS)
				}
				row = append(row, truncate(tok.Encode(s), per-1)...)
				voters = append(voters, s)
				weights = append(weights, 1/float64(len(g)))
			}
			records = append(records, row)
		}
	default:
		return nil, fmt.Errorf("dpwindow: unit must be record or user, not %q", cfg.Unit)
	}
	if err := freshAdapters(m, *cfg.LoRA, seed64(cfg.Seeds)); err != nil {
		return nil, fmt.Errorf("dpwindow: adapters: %w", err)
	}
	tr, err := dpsgd.NewTrainer(m, dpsgd.TrainerOptions{
		Clip: plan.Clip, NoiseMultiplier: plan.NoiseMultiplier, ExpectedBatch: plan.SampleRate * float64(plan.Records),
		LearningRate: cfg.LearningRate, Trainable: dpsgd.TrainSetOf(lm.TrainAdapters),
		Buckets: dpsgd.DefaultBuckets(plan.Records, plan.SampleRate), SeqLen: seqLen, Seeds: cfg.Seeds,
	})
	if err != nil {
		return nil, fmt.Errorf("dpwindow: trainer: %w", err)
	}
	prog.Stage("DP fine-tuning", plan.Steps)
	sample := rand.New(rand.NewChaCha8(seed32(cfg.Seeds)))
	if err := dpsgd.TrainPoisson(ctx, tr, records, plan.SampleRate, plan.Steps, sample, func(int, dpsgd.StepStats) { prog.Advance(1) }); err != nil {
		return nil, fmt.Errorf("dpwindow: %w", err)
	}

	poolSize := max(2, int(math.Ceil(cfg.PoolFactor*float64(len(texts)))))
	prog.Stage("sampling", poolSize)
	pool, _, err := synth.Sample(ctx, m, tok, poolSize, synth.Options{
		// 256 rows at a time: a pool is thousands of sequences, and a
		// wider decoding step spreads its fixed costs (the step's graph,
		// the vocabulary softmax per row is not one of them) over more
		// tokens: ~1.5x the tokens/s of 64 rows here, for ~100 MB of KV
		// cache with the shipped model.
		SampleOptions: lm.SampleOptions{TopP: cfg.TopP, Temperature: cfg.Temperature, Seed: seed64(cfg.Seeds), BatchSize: poolBatch},
		Progress:      prog.Advance,
	})
	if err != nil {
		return nil, fmt.Errorf("dpwindow: %w", err)
	}
	if len(pool) < 2 {
		return nil, fmt.Errorf("dpwindow: the generator produced %d distinct texts", len(pool))
	}
	prog.Stage("DP filter", 3)
	e, err := emb(pool)
	if err != nil {
		return nil, fmt.Errorf("dpwindow: embedder: %w", err)
	}
	poolE, err := e.Embed(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("dpwindow: embedding the pool: %w", err)
	}
	prog.Advance(1)
	privE, err := e.Embed(ctx, voters)
	if err != nil {
		return nil, fmt.Errorf("dpwindow: embedding the window: %w", err)
	}
	prog.Advance(1)
	fopts := filter.Options{
		Clusters: cfg.Clusters, HistogramSigma: plan.HistogramSigma, PrivateWeights: weights,
		Output: max(1, int(math.Round(cfg.OutputFactor*float64(len(texts))))), Seed: seed64(cfg.Seeds),
	}
	if cfg.Seeds != nil {
		fopts.Noise = rand.New(rand.NewChaCha8(seed32(cfg.Seeds)))
	}
	res, err := filter.Run(ctx, poolE, privE, fopts)
	if err != nil {
		return nil, fmt.Errorf("dpwindow: %w", err)
	}
	prog.Advance(1)
	out := &Output{Histogram: res.Histogram, Pool: pool, Short: len(res.Short)}
	for i, j := range res.Selected {
		out.Texts = append(out.Texts, pool[j])
		out.Clusters = append(out.Clusters, res.SelectedCluster[i])
	}
	return out, nil
}

// freshAdapters gives m new adapters for a window: added to a model that
// has none, or reset in place (optimizer state too) on a model reused from
// an earlier window with the same adapter shape, which keeps its compiled
// graphs.
func freshAdapters(m *lm.Model, l lm.LoRAConfig, seed uint64) error {
	if have := m.Config().LoRA; have.Rank > 0 {
		if have.Rank != l.Rank || !slices.Equal(have.Targets, l.Targets) || have.Alpha != l.Alpha {
			return fmt.Errorf("model already has other adapters (rank %d, targets %v)", have.Rank, have.Targets)
		}
		return m.ResetLoRA(seed)
	}
	return m.AddLoRA(l, seed)
}

// BoundUsers groups texts by user and keeps at most k of each user's
// texts, chosen uniformly at random without replacement (the bound that
// makes a user's influence finite). Users come in order of first
// appearance; a user's texts keep their order. An empty user id is a user
// of its own per record: without ids there is nothing to group by.
func BoundUsers(texts, users []string, k int, rng *rand.Rand) [][]string {
	idx := map[string]int{}
	var groups [][]string
	for i, u := range users {
		if u == "" {
			groups = append(groups, []string{texts[i]})
			continue
		}
		g, ok := idx[u]
		if !ok {
			g = len(groups)
			idx[u] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], texts[i])
	}
	for i, g := range groups {
		if len(g) <= k {
			continue
		}
		keep := rng.Perm(len(g))[:k]
		slices.Sort(keep)
		kept := make([]string, k)
		for j, p := range keep {
			kept[j] = g[p]
		}
		groups[i] = kept
	}
	return groups
}

// DistinctUsers counts the users BoundUsers would form.
func DistinctUsers(users []string) int {
	seen := map[string]bool{}
	n := 0
	for _, u := range users {
		if u == "" {
			n++
		} else if !seen[u] {
			seen[u] = true
			n++
		}
	}
	return n
}

func truncate(ids []int32, n int) []int32 {
	if len(ids) > n {
		return ids[:n]
	}
	return ids
}

// distinct keeps the first copy of each text, in order.
func distinct(texts []string) []string {
	seen := make(map[string]bool, len(texts))
	out := make([]string, 0, len(texts))
	for _, t := range texts {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// seed32 draws a seed from seeds, or from crypto/rand when it is nil
// (Config.Seeds).
func seed32(seeds io.Reader) [32]byte {
	var s [32]byte
	if seeds == nil {
		seeds = crand.Reader // never fails (Go 1.24+)
	}
	if _, err := io.ReadFull(seeds, s[:]); err != nil {
		// An evaluation's seed source ran dry: fall back to fresh
		// randomness rather than a predictable zero seed.
		_, _ = crand.Read(s[:])
	}
	return s
}

// seed64 is seed32 cut to 64 bits.
func seed64(seeds io.Reader) uint64 {
	s := seed32(seeds)
	var v uint64
	for _, b := range s[:8] {
		v = v<<8 | uint64(b)
	}
	return v
}
