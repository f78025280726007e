package lm

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// TestSamplerDrawsFromTheModel checks the whole sampling path (in-graph
// softmax with temperature, donated KV caches, the Go draw with top-k/top-p)
// against the model's own distribution: the first token of 20,000 draws
// from a fixed tiny model, counted per token, against the softmax of its
// first-step logits (divided by the temperature, truncated to top-k or to
// the top-p nucleus and renormalised). Every token's frequency must lie
// within 5 standard errors of its probability (sqrt(p(1-p)/n)), plus 2e-4
// for float32 rounding; tokens outside the nucleus must never be drawn.
func TestSamplerDrawsFromTheModel(t *testing.T) {
	requireBackend(t)
	cfg := tinyConfig()
	m := newTiny(t, cfg, 11)
	logits, err := m.LogitsFor([][]int32{{cfg.EOS}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	for _, opts := range []SampleOptions{
		{Temperature: 1, TopP: 1},
		{Temperature: 0.3, TopP: 1},
		{Temperature: 0.3, TopP: 0.8},
		{Temperature: 1, TopK: 5, TopP: 1},
		{Temperature: 0.9, TopK: 8, TopP: 0.7},
	} {
		t.Run(fmt.Sprintf("T=%g,p=%g,k=%d", opts.Temperature, opts.TopP, opts.TopK), func(t *testing.T) {
			want := referenceDistribution(logits[0][0], opts)
			opts.MaxTokens, opts.Seed = 1, 5
			out, err := m.Generate(context.Background(), n, opts)
			if err != nil {
				t.Fatal(err)
			}
			counts := make([]float64, cfg.VocabSize)
			for _, s := range out {
				id := cfg.EOS // an empty sequence drew EOS first
				if len(s) > 0 {
					id = s[0]
				}
				counts[id]++
			}
			for id, p := range want {
				freq := counts[id] / n
				if p == 0 {
					if freq != 0 {
						t.Errorf("token %d outside the nucleus drawn %d times", id, int(counts[id]))
					}
					continue
				}
				if tol := 5*math.Sqrt(p*(1-p)/n) + 2e-4; math.Abs(freq-p) > tol {
					t.Errorf("token %d: frequency %.4f, probability %.4f (tolerance %.4f)", id, freq, p, tol)
				}
			}
		})
	}
}

// referenceDistribution is the next-token distribution Generate should draw
// from, computed in float64 from the logits.
func referenceDistribution(logits []float32, opts SampleOptions) []float64 {
	p := make([]float64, len(logits))
	mx := float64(slices.Max(logits))
	for i, l := range logits {
		p[i] = math.Exp((float64(l) - mx) / opts.Temperature)
	}
	keep := referenceNucleus(p, opts)
	kept := 0.0
	for _, i := range keep {
		kept += p[i]
	}
	out := make([]float64, len(p))
	for _, i := range keep {
		out[i] = p[i] / kept
	}
	return out
}

// referenceNucleus sorts the whole vocabulary by descending weight (ties by
// id), cuts it at top-k, then at the top-p share of what top-k kept, and
// returns the kept ids, most probable first.
func referenceNucleus(p []float64, opts SampleOptions) []int {
	order := make([]int, len(p))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return p[order[a]] > p[order[b]] })
	keep := len(order)
	if opts.TopK > 0 && opts.TopK < keep {
		keep = opts.TopK
	}
	if opts.TopP < 1 {
		base := 0.0
		for _, i := range order[:keep] {
			base += p[i]
		}
		mass := 0.0
		for j, i := range order[:keep] {
			mass += p[i]
			if mass >= opts.TopP*base {
				keep = j + 1
				break
			}
		}
	}
	return order[:keep]
}

// TestContinuousBatchingMatchesOneBatch: 20 sequences of varied lengths
// decoded 3 rows at a time (rows are reused as soon as their sequence
// ends, on top of the previous sequence's cache) equal the same 20
// decoded in one batch of 20 (no row reused), sequence by sequence.
func TestContinuousBatchingMatchesOneBatch(t *testing.T) {
	requireBackend(t)
	cfg := tinyConfig()
	cfg.TiedEmbeddings = false
	m := newTiny(t, cfg, 12)
	// Random head with the end-of-text logit raised by 2 (layer-norm
	// outputs sum to zero, so with gain and bias 1 a column shift of
	// 2/Width adds exactly 2): sequences end after ~10 tokens on average.
	ones := make([]float32, cfg.Width)
	for i := range ones {
		ones[i] = 1
	}
	for _, p := range []string{pathLNf + "/gain", pathLNf + "/bias"} {
		if err := m.SetWeight(p, ones); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	head := make([]float32, cfg.Width*cfg.VocabSize)
	for i := range head {
		head[i] = float32(rng.NormFloat64() * 0.3)
		if i%cfg.VocabSize == int(cfg.EOS) {
			head[i] += 2 / float32(cfg.Width)
		}
	}
	if err := m.SetWeight(pathHead, head); err != nil {
		t.Fatal(err)
	}
	gen := func(batch int) [][]int32 {
		t.Helper()
		out, err := m.Generate(context.Background(), 20, SampleOptions{Seed: 3, MaxTokens: 12, BatchSize: batch})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	one, three := gen(20), gen(3)
	lengths := map[int]bool{}
	for i := range one {
		lengths[len(one[i])] = true
		if !slices.Equal(one[i], three[i]) {
			t.Errorf("sequence %d: %v in one batch, %v three rows at a time", i, one[i], three[i])
		}
	}
	if len(lengths) < 3 {
		t.Errorf("lengths %v: want varied lengths, so rows are reused mid-stream", lengths)
	}
}

// TestNucleusMatchesSorting: the candidates the sampler keeps (exponent
// buckets, then selection) are exactly those of sorting the vocabulary by
// descending probability (ties by id) and cutting at top-k, then at the
// top-p mass of what top-k kept, on distributions from flat to peaked,
// with zeros and ties, at the shipped model's vocabulary size.
func TestNucleusMatchesSorting(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	dists := map[string]func(i int) float64{
		"flat":     func(int) float64 { return 1 + 0.5*rng.Float64() },
		"peaked":   func(int) float64 { return math.Exp(8 * rng.NormFloat64()) },
		"zipf":     func(i int) float64 { return 1 / float64(i+1) },
		"zeros":    func(i int) float64 { return float64(i%3) * rng.Float64() },
		"ties":     func(i int) float64 { return float64(1 + i%4) },
		"one-hot":  func(i int) float64 { return float64(max(0, 1-i)) },
		"subnorml": func(i int) float64 { return float64(math.SmallestNonzeroFloat32) * float64(1+i%5) },
	}
	optsList := []SampleOptions{
		{TopP: 0.95}, {TopP: 0.3}, {TopP: 0.9999}, {TopK: 40, TopP: 1}, {TopK: 1, TopP: 1},
		{TopK: 40, TopP: 0.5}, {TopK: 5000, TopP: 0.95},
	}
	for name, f := range dists {
		for _, vocab := range []int{7, 16384} {
			probs := make([]float32, vocab)
			total, maxP := 0.0, float32(0)
			for i := range probs {
				probs[i] = float32(f(i))
				total += float64(probs[i])
				maxP = max(maxP, probs[i])
			}
			for _, opts := range optsList {
				if (opts.TopK == 0 || opts.TopK >= vocab) && opts.TopP == 1 {
					continue // no restriction: sample draws from probs directly
				}
				t.Run(fmt.Sprintf("%s/%d/k=%d,p=%g", name, vocab, opts.TopK, opts.TopP), func(t *testing.T) {
					got, _ := newSampler(vocab).nucleus(probs, opts, total, maxP)
					want := sortedNucleus(probs, opts)
					slices.Sort(got)
					if !slices.Equal(got, want) {
						t.Errorf("kept %d ids, sorting keeps %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
					}
				})
			}
		}
	}
}

// sortedNucleus is the nucleus by sorting the whole vocabulary, ids sorted.
func sortedNucleus(probs []float32, opts SampleOptions) []int {
	p := make([]float64, len(probs))
	for i, q := range probs {
		p[i] = float64(q)
	}
	out := slices.Clone(referenceNucleus(p, opts))
	slices.Sort(out)
	return out
}

func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
