package lm

import (
	"context"
	"math/rand/v2"
	"testing"
)

// benchConfig is the realistic small generator: vocab 4096, d 256, 4 layers,
// 4 heads, context 64 (~5.3M parameters with tied embeddings).
func benchConfig() Config { return DefaultConfig(4096, 0) }

func benchBatch(B, T, vocab int) [][]int32 {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([][]int32, B)
	for i := range out {
		n := T - 1 // full rows: BOS + T-1 tokens, EOS target
		s := make([]int32, n)
		for j := range s {
			s[j] = 1 + rng.Int32N(int32(vocab-1))
		}
		out[i] = s
	}
	return out
}

func benchTrain(b *testing.B, set TrainSet) {
	requireBackend(b)
	m, err := New(benchConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	if set == TrainAdapters {
		if err := m.AddLoRA(DefaultLoRA(), 1); err != nil {
			b.Fatal(err)
		}
	}
	base, ad := m.NumParams()
	b.Logf("params: base %d, adapters %d", base, ad)
	tr, err := m.NewTrainer(TrainerOptions{Trainable: set, BatchSize: 32})
	if err != nil {
		b.Fatal(err)
	}
	batch := benchBatch(32, m.cfg.Context, m.cfg.VocabSize)
	if _, err := tr.Step(batch); err != nil { // compile
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := tr.Step(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(32*m.cfg.Context*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkTrainStep: one Adam step on all weights, B=32, T=64.
func BenchmarkTrainStep(b *testing.B) { benchTrain(b, TrainBase) }

// BenchmarkTrainStepLoRA: one Adam step on the adapters only (rank 8, q/k/v/o).
func BenchmarkTrainStepLoRA(b *testing.B) { benchTrain(b, TrainAdapters) }

// BenchmarkGenerate: sampling 32 sequences of 64 tokens (EOS ignored by
// construction: a random model rarely emits it) with the KV cache.
func BenchmarkGenerate(b *testing.B) {
	requireBackend(b)
	m, err := New(benchConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	opts := SampleOptions{BatchSize: 32, Seed: 1}
	if _, err := m.Generate(ctx, 32, SampleOptions{BatchSize: 32, MaxTokens: 2}); err != nil { // compile once for (32, 2)
		b.Fatal(err)
	}
	if _, err := m.Generate(ctx, 32, opts); err != nil { // compile for (32, 64)
		b.Fatal(err)
	}
	b.ResetTimer()
	tokens := 0
	for b.Loop() {
		out, err := m.Generate(ctx, 32, opts)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range out {
			tokens += len(s) + 1
		}
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}
