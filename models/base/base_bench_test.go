package base

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/lm"
)

// BenchmarkShippedTrainStep: tokens/s of one training step of the shipped
// model on a full 32x64 batch, all weights (pre-training) and LoRA adapters
// only (DP fine-tuning trains these).
func BenchmarkShippedTrainStep(b *testing.B) {
	for _, set := range []lm.TrainSet{lm.TrainAll, lm.TrainAdapters} {
		b.Run(set.String(), func(b *testing.B) {
			m, _ := load(b)
			if set == lm.TrainAdapters {
				if err := m.AddLoRA(lm.DefaultLoRA(), 1); err != nil {
					b.Fatal(err)
				}
			}
			cfg := m.Config()
			rng := rand.New(rand.NewPCG(1, 2))
			batch := make([][]int32, 32)
			for i := range batch {
				batch[i] = make([]int32, cfg.Context-1)
				for j := range batch[i] {
					batch[i][j] = rng.Int32N(cfg.EOS)
				}
			}
			tr, err := m.NewTrainer(lm.TrainerOptions{Trainable: set, BatchSize: 32})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tr.Step(batch); err != nil { // compile outside the timing
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := tr.Step(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(32*cfg.Context*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkShippedGenerate: sampled tokens/s of the shipped model with its
// KV cache at the reference settings (top-p 0.95, temperature 1), batch
// 64, 512 instructions per op (as the pool is sampled: rows are refilled
// as sequences end).
func BenchmarkShippedGenerate(b *testing.B) {
	m, _ := load(b)
	ctx := context.Background()
	opts := lm.SampleOptions{BatchSize: 64}
	if _, err := m.Generate(ctx, 64, opts); err != nil { // compile
		b.Fatal(err)
	}
	b.ResetTimer()
	tokens := 0
	for i := range b.N {
		opts.Seed = uint64(i + 1)
		seqs, err := m.Generate(ctx, 512, opts)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range seqs {
			tokens += len(s) + 1 // the EOS step too
		}
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}
