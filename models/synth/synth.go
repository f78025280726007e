package synth

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// Stats counts what Sample drew.
type Stats struct {
	Drawn, Duplicates, Empty, Tokens int
	Elapsed                          time.Duration
}

// Options configures Sample.
type Options struct {
	lm.SampleOptions
	// MaxDrawFactor bounds the draws at MaxDrawFactor*n (0: 20), so a
	// model that repeats itself ends with fewer texts instead of looping.
	MaxDrawFactor int
	// Progress, when set, is told how many more texts are done, as
	// sequences finish (at most n in all).
	Progress func(kept int)
}

// Sample returns up to n distinct, non-empty instructions from m, in the
// order drawn. Each round uses a seed derived from opts.Seed, so a run is
// reproducible. It returns fewer than n texts (without an error) only when
// MaxDrawFactor*n samples did not yield n distinct ones; the caller
// decides whether that is a failure.
func Sample(ctx context.Context, m *lm.Model, tok *tokenizer.Tokenizer, n int, opts Options) ([]string, Stats, error) {
	var st Stats
	if n < 1 {
		return nil, st, fmt.Errorf("synth: n must be >= 1, got %d", n)
	}
	factor := opts.MaxDrawFactor
	if factor <= 0 {
		factor = 20
	}
	start := time.Now()
	seen := make(map[string]bool, n)
	texts := make([]string, 0, n)
	reported := 0 // progress told so far, never above n
	for round := uint64(0); len(texts) < n && st.Drawn < factor*n; round++ {
		o := opts.SampleOptions
		o.Seed = opts.Seed + round*0x9e3779b97f4a7c15
		if opts.Progress != nil {
			// Progress moves as sequences finish (one round draws all
			// that are missing, so decoding rows never wait for a chunk's
			// last sequence); a duplicate found afterwards is drawn again
			// in the next round without moving it past n.
			o.Progress = func(finished int) {
				if adv := min(finished, n-reported); adv > 0 {
					reported += adv
					opts.Progress(adv)
				}
			}
		}
		seqs, err := m.Generate(ctx, n-len(texts), o)
		if err != nil {
			return nil, st, fmt.Errorf("synth: sampling round %d: %w", round, err)
		}
		for _, s := range seqs {
			st.Drawn++
			st.Tokens += len(s)
			// Byte-level tokens can end mid-character: drop broken bytes.
			text := strings.TrimSpace(strings.ToValidUTF8(tok.Decode(s), ""))
			switch {
			case text == "":
				st.Empty++
			case seen[text]:
				st.Duplicates++
			case len(texts) < n:
				seen[text] = true
				texts = append(texts, text)
			}
		}
	}
	if opts.Progress != nil && reported < len(texts) {
		opts.Progress(len(texts) - reported)
	}
	st.Elapsed = time.Since(start)
	return texts, st, nil
}
