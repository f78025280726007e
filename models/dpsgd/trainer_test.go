package dpsgd

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dpinstruct/dpinstruct/models/lm"
)

var testSeqs = [][]int32{{5, 9, 13, 2, 7, 5, 31}, {3, 3, 8}, {39, 1, 22, 22, 17, 4, 6, 10, 12}}

func snapshot(t *testing.T, m *lm.Model) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, p := range m.WeightPaths(false) {
		d, _, err := m.Weight(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = append([]float32(nil), d...)
	}
	return out
}

func newTrainer(t *testing.T, m *lm.Model, opts TrainerOptions) *Trainer {
	t.Helper()
	tr, err := NewTrainer(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestSGDStepMatchesClippedSum: sigma=0, SGD: one step changes each weight
// by -lr * (Σ_b c_b ∇L_b) / ExpectedBatch, also when the batch is split
// across several calls.
func TestSGDStepMatchesClippedSum(t *testing.T) {
	requireBackend(t)
	cases := []struct {
		name    string
		set     lm.TrainSet
		buckets []int
	}{
		{"all/one-call", lm.TrainAll, []int{4}},
		{"all/split-2+1", lm.TrainAll, []int{2}},
		{"adapters/split-1+1+1", lm.TrainAdapters, []int{1}},
	}
	const lr, E, C = 0.5, 2.5, 0.3
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyModel(t, true)
			paths := trainablePathsOf(m, tc.set)
			in, tg, mk, err := lm.PackBatch(testSeqs, 4, tT, m.Config())
			if err != nil {
				t.Fatal(err)
			}
			want := runClipped(t, m, paths, Options{Clip: C, Trainable: tc.set}, in, tg, mk)
			before := snapshot(t, m)
			tr := newTrainer(t, m, TrainerOptions{Clip: C, ExpectedBatch: E, LearningRate: lr,
				Trainable: TrainSetOf(tc.set), Optimizer: "sgd", Buckets: tc.buckets})
			st, err := tr.Step(testSeqs)
			if err != nil {
				t.Fatal(err)
			}
			if st.Records != 3 || st.ClippedFraction == 0 {
				t.Fatalf("stats %+v", st)
			}
			after := snapshot(t, m)
			trained := map[string]int{}
			maxErr := 0.0
			for i, p := range paths {
				trained[p] = i
				scale := 1e-6
				for _, v := range want.grads[i] {
					scale = math.Max(scale, lr*math.Abs(v)/E)
				}
				for j := range want.grads[i] {
					w := -lr * want.grads[i][j] / E
					got := float64(after[p][j]) - float64(before[p][j])
					e := math.Abs(got - w)
					if e > 1e-4*scale+1e-7 {
						t.Fatalf("%s[%d]: update %g, want %g", p, j, got, w)
					}
					maxErr = math.Max(maxErr, e/scale)
				}
			}
			for p, v := range before {
				if _, ok := trained[p]; ok {
					continue
				}
				for j := range v {
					if math.Float32bits(v[j]) != math.Float32bits(after[p][j]) {
						t.Fatalf("untrained %s[%d] changed", p, j)
					}
				}
			}
			t.Logf("%d chunks, max relative update error %.2e", st.Chunks, maxErr)
		})
	}
}

// TestNoiseStd: with an empty batch the clipped sum is exactly zero, so an
// SGD step moves every trainable coordinate by -lr*N(0,(sigma*C)^2)/E (and
// with a split batch, by that plus a negligible clipped sum). The
// sample std over all coordinates must be within ±5% of lr*sigma*C/E
// (a rate 10% off fails: with N ≥ 5000 coordinates the std estimate has a
// relative sd of 1/sqrt(2N) ≤ 1%).
func TestNoiseStd(t *testing.T) {
	requireBackend(t)
	cases := []struct {
		name               string
		sigma, clip, e, lr float64
		optimizer          string
		records            [][]int32
	}{
		{"sgd", 0.8, 0.5, 4, 2, "sgd", nil},
		{"sgd/large-sigma", 3, 0.1, 16, 1, "sgd", nil},
		// Three records over buckets of 2: two gradient calls whose sums
		// are noised by the separate apply graph. The clipped sum (norm
		// <= 3C) is negligible against noise of std 200C per coordinate.
		{"sgd/split-batch", 200, 0.5, 4, 1, "sgd", testSeqs},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyModel(t, false)
			before := snapshot(t, m)
			tr := newTrainer(t, m, TrainerOptions{Clip: tc.clip, NoiseMultiplier: tc.sigma, ExpectedBatch: tc.e,
				LearningRate: tc.lr, Trainable: TrainSetOf(lm.TrainAll), Optimizer: tc.optimizer, Buckets: []int{2}})
			st, err := tr.Step(tc.records)
			if err != nil {
				t.Fatal(err)
			}
			if tc.records != nil && st.Chunks < 2 {
				t.Fatalf("%d chunks: the batch was not split", st.Chunks)
			}
			after := snapshot(t, m)
			var n int
			var sum, sq float64
			for _, p := range tr.TrainablePaths() {
				for j := range before[p] {
					d := float64(after[p][j]) - float64(before[p][j])
					n++
					sum += d
					sq += d * d
				}
			}
			if n < 5000 {
				t.Fatalf("only %d coordinates", n)
			}
			mean := sum / float64(n)
			std := math.Sqrt(sq/float64(n) - mean*mean)
			want := tc.lr * tc.sigma * tc.clip / tc.e
			if r := std / want; math.Abs(r-1) > 0.05 {
				t.Fatalf("noise std %.5g, want %.5g (ratio %.4f)", std, want, r)
			}
			if math.Abs(mean) > 5*want/math.Sqrt(float64(n)) {
				t.Fatalf("noise mean %.3g, std %.3g over %d coordinates", mean, want, n)
			}
			t.Logf("%d coordinates: noise std %.5g, expected %.5g (ratio %.4f), mean %.2g", n, std, want, std/want, mean)
		})
	}
}

// TestAdaptersOnlyLeaveBaseBitIdentical: DP-Adam on the adapters (the
// default set) with noise changes every adapter and no base weight.
func TestAdaptersOnlyLeaveBaseBitIdentical(t *testing.T) {
	requireBackend(t)
	m := tinyModel(t, true)
	before := snapshot(t, m)
	tr := newTrainer(t, m, TrainerOptions{Clip: 1, NoiseMultiplier: 1, ExpectedBatch: 3, LearningRate: 1e-2, Buckets: []int{4}})
	if got := *tr.Options().Trainable; got != lm.TrainAdapters {
		t.Fatalf("default trainable set %s", got)
	}
	for range 3 {
		if _, err := tr.Step(testSeqs); err != nil {
			t.Fatal(err)
		}
	}
	after := snapshot(t, m)
	for p, v := range before {
		changed := false
		for j := range v {
			if math.Float32bits(v[j]) != math.Float32bits(after[p][j]) {
				changed = true
				break
			}
		}
		if Trains(lm.TrainAdapters, p) != changed {
			t.Fatalf("%s: changed=%v", p, changed)
		}
	}
}

func corpusLoss(t *testing.T, m *lm.Model, seqs [][]int32) float64 {
	t.Helper()
	in, tg, mk, err := lm.PackBatch(seqs, len(seqs), tT, m.Config())
	if err != nil {
		t.Fatal(err)
	}
	outs, err := model.CallOnceN(m.Backend(), m.Store(), func(scope *model.Scope, tokens, targets, mask *graph.Node) []*graph.Node {
		return []*graph.Node{lm.MeanTokenLoss(m.Logits(tokens.Graph(), tokens, nil), targets, mask)}
	}, in, tg, mk)
	if err != nil {
		t.Fatal(err)
	}
	return float64(tensors.ToScalar[float32](outs[0]))
}

// TestLossFallsUnderDP: 30 DP-Adam steps with Poisson sampling and moderate
// noise lower the loss on a toy corpus (counting sequences mod 40).
func TestLossFallsUnderDP(t *testing.T) {
	requireBackend(t)
	m := tinyModel(t, false)
	var corpus [][]int32
	for s := range 32 {
		row := make([]int32, 6)
		for i := range row {
			row[i] = int32(1 + (s+i)%39)
		}
		corpus = append(corpus, row)
	}
	const q = 0.5
	tr := newTrainer(t, m, TrainerOptions{Clip: 1, NoiseMultiplier: 0.7, ExpectedBatch: q * float64(len(corpus)),
		LearningRate: 1e-2, Trainable: TrainSetOf(lm.TrainAll), Buckets: []int{16, 32}})
	before := corpusLoss(t, m, corpus)
	rng := rand.New(rand.NewPCG(5, 6))
	for range 30 {
		var batch [][]int32
		for _, i := range PoissonBatch(len(corpus), q, rng) {
			batch = append(batch, corpus[i])
		}
		if _, err := tr.Step(batch); err != nil {
			t.Fatal(err)
		}
	}
	after := corpusLoss(t, m, corpus)
	t.Logf("corpus loss %.4f -> %.4f after 30 DP steps (sigma 0.7, C 1, E 16)", before, after)
	if !(after < before-0.3) {
		t.Fatalf("loss did not fall: %.4f -> %.4f", before, after)
	}
}

func TestNewTrainerRejects(t *testing.T) {
	m := tinyModel(t, false)
	cases := []struct {
		name string
		opts TrainerOptions
	}{
		{"no clip", TrainerOptions{ExpectedBatch: 1, Trainable: TrainSetOf(lm.TrainAll)}},
		{"negative sigma", TrainerOptions{Clip: 1, NoiseMultiplier: -1, ExpectedBatch: 1, Trainable: TrainSetOf(lm.TrainAll)}},
		{"no expected batch", TrainerOptions{Clip: 1, Trainable: TrainSetOf(lm.TrainAll)}},
		{"adapters without lora", TrainerOptions{Clip: 1, ExpectedBatch: 1}},
		{"bad optimizer", TrainerOptions{Clip: 1, ExpectedBatch: 1, Trainable: TrainSetOf(lm.TrainAll), Optimizer: "rmsprop"}},
		{"bad bucket", TrainerOptions{Clip: 1, ExpectedBatch: 1, Trainable: TrainSetOf(lm.TrainAll), Buckets: []int{0}}},
	}
	for _, tc := range cases {
		if _, err := NewTrainer(m, tc.opts); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
