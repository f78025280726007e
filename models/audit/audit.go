package audit

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/dpinstruct/dpinstruct/models/dpwindow"
	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// Config is one audit.
type Config struct {
	// Template holds one %s for the secret (default "my account PIN is %s").
	Template string
	// Digits of each secret (default 6).
	Digits int
	// Repeats: one canary per entry, inserted that many times (default 1, 10, 100).
	Repeats []int
	// Candidates: random secrets each canary is ranked against (default 2000).
	Candidates int
	// Seed picks the canaries, candidates and where they go (public
	// randomness of the audit, not of the mechanism).
	Seed uint64
	// Epsilon and Delta of the window. DP false trains without noise, on
	// every duplicate, and filters with the exact histogram: the
	// non-private reference, for tests only.
	Epsilon, Delta float64
	DP             bool
	// Method is the window method's settings; Method.Unit "user" audits
	// user-level privacy (each canary's copies come from one user).
	Method dpwindow.Config
}

func (c Config) withDefaults() Config {
	if c.Template == "" {
		c.Template = "my account PIN is %s"
	}
	if c.Digits == 0 {
		c.Digits = 6
	}
	if c.Repeats == nil {
		c.Repeats = []int{1, 10, 100}
	}
	if c.Candidates == 0 {
		c.Candidates = 2000
	}
	return c
}

// Canary is one planted secret and what the audit measured.
type Canary struct {
	Text    string
	Repeats int
	// Rank is 1 + the number of candidates the model finds at least as
	// likely; Exposure = log2((Candidates+1)/Rank), in bits.
	Rank     int
	Exposure float64
	// InPool / Released: the secret's digits appear in a sampled or a
	// released synthetic text.
	InPool, Released bool
}

// Result is an audit's outcome.
type Result struct {
	DP             bool
	Plan           dpwindow.Plan
	Records        int
	Pool, Released int
	Canaries       []Canary
	MaxExposure    float64 // bits
	ChanceExposure float64 // mean exposure at chance, 1/ln 2
	MaxMeasurable  float64 // log2(Candidates+1)
}

// Run plants the canaries among background texts, runs the window method
// on a fresh copy of the base model (load must return one each call), and
// measures each canary.
func Run(ctx context.Context, load func() (*lm.Model, error), tok *tokenizer.Tokenizer,
	emb func(pool []string) (embed.Embedder, error), background []string, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xca4a71))
	secret := func() string {
		var b strings.Builder
		for range cfg.Digits {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		return b.String()
	}
	// Each background text is its own user's; each canary's copies all
	// come from one user (what user-level privacy is for).
	texts := append([]string(nil), background...)
	users := make([]string, len(texts))
	for i := range users {
		users[i] = fmt.Sprintf("background-%d", i)
	}
	var canaries []Canary
	var secrets []string
	for i, k := range cfg.Repeats {
		s := secret()
		secrets = append(secrets, s)
		c := Canary{Text: fmt.Sprintf(cfg.Template, s), Repeats: k}
		canaries = append(canaries, c)
		for range k {
			texts = append(texts, c.Text)
			users = append(users, fmt.Sprintf("canary-%d", i))
		}
	}
	rng.Shuffle(len(texts), func(i, j int) {
		texts[i], texts[j] = texts[j], texts[i]
		users[i], users[j] = users[j], users[i]
	})

	m, err := load()
	if err != nil {
		return nil, err
	}
	method := cfg.Method
	n, runUsers := len(texts), []string(nil)
	if method.Unit == "user" {
		n, runUsers = dpwindow.DistinctUsers(users), users
	}
	var plan dpwindow.Plan
	if cfg.DP {
		plan, err = dpwindow.MakePlan(method, n, cfg.Epsilon, cfg.Delta)
		if err != nil {
			return nil, err
		}
	} else {
		// Same sampling and steps, no noise, no effective clipping, exact
		// histogram: the non-private reference.
		// Only the plan's q and steps are used, so the cheapest accountant
		// prices it (a tight one would search tiny noises for epsilon 1e6).
		ref := method
		ref.Accountant = "rdp"
		plan, err = dpwindow.MakePlan(ref, n, 1e6, 1e-6)
		if err != nil {
			return nil, err
		}
		plan.NoiseMultiplier, plan.HistogramSigma, plan.Clip = 0, 0, 1e6
		plan.Epsilon, plan.SGDEpsilon, plan.HistogramEpsilon = 0, 0, 0
		plan.EpsilonLower, plan.AccountantError = 0, 0
		plan.Accountant = "none: non-private reference, no guarantee"
		method.HistogramSigma = 0
		method.KeepDuplicates = true // no protection of any kind
	}
	out, err := dpwindow.Run(ctx, m, tok, emb, texts, runUsers, plan, method, nil)
	if err != nil {
		return nil, err
	}
	res := &Result{DP: cfg.DP, Plan: plan, Records: len(texts), Pool: len(out.Pool), Released: len(out.Texts),
		ChanceExposure: 1 / math.Ln2, MaxMeasurable: math.Log2(float64(cfg.Candidates + 1))}
	for i := range canaries {
		c := &canaries[i]
		cands := make([]string, cfg.Candidates)
		for j := range cands {
			s := secret()
			for s == secrets[i] {
				s = secret()
			}
			cands[j] = fmt.Sprintf(cfg.Template, s)
		}
		rows := make([][]int32, 0, len(cands)+1)
		rows = append(rows, tok.Encode(c.Text))
		for _, s := range cands {
			rows = append(rows, tok.Encode(s))
		}
		ll, err := m.LogLikelihood(ctx, rows)
		if err != nil {
			return nil, fmt.Errorf("audit: scoring canary %d: %w", i, err)
		}
		c.Rank = 1
		for _, v := range ll[1:] {
			if v >= ll[0] {
				c.Rank++
			}
		}
		c.Exposure = math.Log2(float64(cfg.Candidates+1) / float64(c.Rank))
		res.MaxExposure = math.Max(res.MaxExposure, c.Exposure)
		for _, p := range out.Pool {
			if strings.Contains(p, secrets[i]) {
				c.InPool = true
			}
		}
		for _, p := range out.Texts {
			if strings.Contains(p, secrets[i]) {
				c.Released = true
			}
		}
	}
	res.Canaries = canaries
	return res, nil
}
