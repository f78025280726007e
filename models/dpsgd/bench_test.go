package dpsgd

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/internal/memprobe"
	"github.com/dpinstruct/dpinstruct/models/lm"
)

// BenchmarkDPStep times a DP-Adam step (all weights, B=32, T=64, width 192,
// 4 layers) against lm.Trainer's non-private Adam step on the same model
// and batch, and reports the medians over iterations of each step's time
// and of the paired ratio (dp/plain). It also reports each step's peak
// heap: the working memory a step adds above the heap before it (model,
// both trainers' optimizer state and compiled graphs are in the baseline
// of both), and their ratio. Two vocabularies: 4,096 (the 2026-11 base
// model, comparable with earlier runs) and 16,384 (the shipped one).
func BenchmarkDPStep(b *testing.B) {
	for _, vocab := range []int{4096, 16384} {
		b.Run(fmt.Sprintf("vocab=%d", vocab), func(b *testing.B) { benchDPStep(b, vocab) })
	}
}

func benchDPStep(b *testing.B, vocab int) {
	requireBackend(b)
	cfg := lm.Config{VocabSize: vocab, Context: 64, Layers: 4, Width: 192, Heads: 4, MLPRatio: 4, EOS: 0, TiedEmbeddings: true}
	// DPINSTRUCT_BACKEND picks the backend (deploy/gpu/dp-step-bench.sh
	// runs this on a GPU with xla:<plugin>).
	be, err := lm.BackendFromName(os.Getenv("DPINSTRUCT_BACKEND"))
	if err != nil {
		b.Fatal(err)
	}
	m, err := lm.New(cfg, 1, lm.WithBackend(be))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seqs := make([][]int32, 32)
	for i := range seqs {
		seqs[i] = make([]int32, 63)
		for j := range seqs[i] {
			seqs[i][j] = int32(1 + rng.IntN(vocab-1))
		}
	}
	plain, err := m.NewTrainer(lm.TrainerOptions{Trainable: lm.TrainAll, BatchSize: 32, SeqLen: 64})
	if err != nil {
		b.Fatal(err)
	}
	dp, err := NewTrainer(m, TrainerOptions{Clip: 1, NoiseMultiplier: 1, ExpectedBatch: 32,
		Trainable: TrainSetOf(lm.TrainAll), Buckets: []int{32}, SeqLen: 64})
	if err != nil {
		b.Fatal(err)
	}
	// Compile both outside the timing.
	if _, err := plain.Step(seqs); err != nil {
		b.Fatal(err)
	}
	if _, err := dp.Step(seqs); err != nil {
		b.Fatal(err)
	}
	// Per-iteration times, paired (plain then DP on the same model state):
	// the reported figures are medians, so one step that lands on a GC
	// cycle or a noisy neighbour does not move them.
	var tPlain, tDP []float64
	var memPlain, memDP memprobe.Peaks
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		probe := memprobe.Start()
		b.StartTimer()
		s := time.Now()
		if _, err := plain.Step(seqs); err != nil {
			b.Fatal(err)
		}
		tPlain = append(tPlain, time.Since(s).Seconds())
		b.StopTimer()
		memPlain = memPlain.Max(probe.Stop())
		probe = memprobe.Start()
		b.StartTimer()
		s = time.Now()
		if _, err := dp.Step(seqs); err != nil {
			b.Fatal(err)
		}
		tDP = append(tDP, time.Since(s).Seconds())
		b.StopTimer()
		memDP = memDP.Max(probe.Stop())
		b.StartTimer()
	}
	const mb = 1 << 20
	ratios := make([]float64, len(tDP))
	for i := range tDP {
		ratios[i] = tDP[i] / tPlain[i]
	}
	b.ReportMetric(1000*median(tDP), "dp-ms/step")
	b.ReportMetric(1000*median(tPlain), "plain-ms/step")
	b.ReportMetric(median(ratios), "dp/plain")
	b.ReportMetric(float64(memDP.Added())/mb, "dp-step-MB")
	b.ReportMetric(float64(memPlain.Added())/mb, "plain-step-MB")
	b.ReportMetric(float64(memDP.Added())/float64(memPlain.Added()), "dp/plain-mem")
	b.ReportMetric(float64(memDP.HeapInUse)/float64(memPlain.HeapInUse), "dp/plain-peak-heap")
	b.ReportMetric(float64(memDP.Baseline)/mb, "baseline-MB")
}

// median of xs (which it sorts).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}
