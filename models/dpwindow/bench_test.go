package dpwindow

import (
	"context"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/models/base"
	"github.com/dpinstruct/dpinstruct/models/corpus"
	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/lm"
)

// stageClock records when each stage of Run starts and when the DP filter
// stage's three parts (pool embedded, window embedded, filter done) end.
type stageClock struct {
	starts  map[string]time.Time
	order   []string
	filter  []time.Time
	current string
}

func (c *stageClock) Stage(name string, _ int) {
	c.starts[name] = time.Now()
	c.order = append(c.order, name)
	c.current = name
}

func (c *stageClock) Advance(int) {
	if c.current == "DP filter" {
		c.filter = append(c.filter, time.Now())
	}
}

// BenchmarkDemoWindow runs one window as `make demo` does
// (deploy/local/demo.yaml: 1,000 Dolly prompts, expected batch 32, one
// epoch, 32-token rows, a pool of 5,000, the base model's embedding,
// epsilon 4 at delta 1e-6) and reports each stage's seconds: DP
// fine-tuning, sampling the pool, embedding pool and window, the filter,
// and the whole window (model loading included).
func BenchmarkDemoWindow(b *testing.B) {
	if !lm.SIMDBuild {
		b.Skip("build with GOEXPERIMENT=simd")
	}
	ctx := context.Background()
	texts, err := corpus.ReadVisible(ctx, corpus.DollyPrompts())
	if err != nil {
		b.Skipf("Dolly prompts not found (set DPINSTRUCT_DATA): %v", err)
	}
	texts = texts[:1000]
	cfg := Config{ExpectedBatch: 32, Epochs: 1, SeqLen: 32, HistogramSigma: 5, PoolFactor: 5}
	plan, err := MakePlan(cfg, len(texts), 4, 1e-6)
	if err != nil {
		b.Fatal(err)
	}
	var train, sample, embedS, filterS, total time.Duration
	for b.Loop() {
		start := time.Now()
		m, tok, err := base.Open("")
		if err != nil {
			b.Fatal(err)
		}
		emb := func([]string) (embed.Embedder, error) {
			bm, _, err := base.Open("")
			if err != nil {
				return nil, err
			}
			return embed.NewModel(bm, tok), nil
		}
		clock := &stageClock{starts: map[string]time.Time{}}
		if _, err := Run(ctx, m, tok, emb, texts, nil, plan, cfg, clock); err != nil {
			b.Fatal(err)
		}
		end := time.Now()
		total += end.Sub(start)
		train += clock.starts["sampling"].Sub(clock.starts["DP fine-tuning"])
		sample += clock.starts["DP filter"].Sub(clock.starts["sampling"])
		if len(clock.filter) == 3 {
			embedS += clock.filter[1].Sub(clock.starts["DP filter"])
			filterS += clock.filter[2].Sub(clock.filter[1])
		}
	}
	n := float64(b.N)
	b.ReportMetric(train.Seconds()/n, "train-s")
	b.ReportMetric(sample.Seconds()/n, "sample-s")
	b.ReportMetric(embedS.Seconds()/n, "embed-s")
	b.ReportMetric(filterS.Seconds()/n, "filter-s")
	b.ReportMetric(total.Seconds()/n, "window-s")
}
