package filter

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// blobs returns n points around each of the given centres in dim d.
func blobs(rng *rand.Rand, centres [][]float32, n []int, spread float64) [][]float32 {
	var out [][]float32
	for c, centre := range centres {
		for range n[c] {
			p := make([]float32, len(centre))
			for j := range p {
				p[j] = centre[j] + float32(spread*rng.NormFloat64())
			}
			out = append(out, p)
		}
	}
	return out
}

func axes(k, d int) [][]float32 {
	out := make([][]float32, k)
	for i := range out {
		out[i] = make([]float32, d)
		out[i][i] = 1
	}
	return out
}

// The private set's share per cluster, found from which blob each point came from.
func TestExactHistogramIsReproducedWithoutNoise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	centres := axes(4, 8)
	pool := blobs(rng, centres, []int{300, 300, 300, 300}, 0.02)
	private := blobs(rng, centres, []int{100, 50, 30, 20}, 0.02)
	res, err := Run(context.Background(), pool, private, Options{Clusters: 4, HistogramSigma: 0, Output: 400, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	// Cluster ids are arbitrary: compare the multiset of selected counts.
	counts := make([]int, res.Clusters)
	for _, c := range res.SelectedCluster {
		counts[c]++
	}
	slices.Sort(counts)
	if want := []int{40, 60, 100, 200}; !slices.Equal(counts, want) {
		t.Errorf("selected per cluster %v, want %v (400 x the private shares)", counts, want)
	}
	hist := slices.Clone(res.Histogram)
	slices.Sort(hist)
	for i, want := range []float64{0.1, 0.15, 0.25, 0.5} {
		if math.Abs(hist[i]-want) > 1e-12 {
			t.Errorf("histogram %v, want shares 0.1 0.15 0.25 0.5", hist)
			break
		}
	}
	if len(res.Short) != 0 {
		t.Errorf("short clusters %v, want none", res.Short)
	}
	seen := map[int]bool{}
	for _, i := range res.Selected {
		if i < 0 || i >= len(pool) || seen[i] {
			t.Fatalf("selected index %d out of the pool or drawn twice", i)
		}
		seen[i] = true
	}
}

func TestShortClustersGiveWhatTheyHave(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	centres := axes(2, 4)
	pool := blobs(rng, centres, []int{500, 10}, 0.02)
	private := blobs(rng, centres, []int{50, 50}, 0.02)
	res, err := Run(context.Background(), pool, private, Options{Clusters: 2, Output: 100, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Short) != 1 || res.PoolCounts[res.Short[0]] != 10 || res.Quota[res.Short[0]] != 50 {
		t.Fatalf("short %v, pool %v, quota %v: want the 10-member cluster short of its quota 50", res.Short, res.PoolCounts, res.Quota)
	}
	if len(res.Selected) != 60 {
		t.Errorf("selected %d, want 50 + all 10 of the short cluster", len(res.Selected))
	}
}

// The noise added to each count has standard deviation sigma: a sigma 10%
// off fails (the sample std of 20,000 draws is within 1.5% of sigma at
// about 3 standard errors).
func TestHistogramNoiseHasTheRightStd(t *testing.T) {
	const sigma, bins, count = 7.0, 20000, 1000.0 // far from zero: clamping never bites
	counts := make([]float64, bins)
	for i := range counts {
		counts[i] = count
	}
	noisy := NoisyCounts(counts, sigma, rand.New(rand.NewPCG(3, 3)))
	var ss, sum float64
	for _, v := range noisy {
		ss += (v - count) * (v - count)
		sum += v - count
	}
	std := math.Sqrt(ss / bins)
	if math.Abs(std-sigma)/sigma > 0.015 {
		t.Errorf("noise std %.3f, want %.3f within 1.5%%", std, sigma)
	}
	if mean := sum / bins; math.Abs(mean) > 4*sigma/math.Sqrt(bins) {
		t.Errorf("noise mean %.3f, want 0", mean)
	}
	for _, wrong := range []float64{sigma * 0.9, sigma * 1.1} {
		if math.Abs(std-wrong)/wrong < 0.015 {
			t.Errorf("noise std %.3f cannot be told from a sigma of %.3f", std, wrong)
		}
	}
}

func TestNoisyHistogramClampsAndNormalises(t *testing.T) {
	tests := []struct {
		name   string
		counts []float64
		sigma  float64
		want   []float64
	}{
		{"exact", []float64{1, 3}, 0, []float64{0.25, 0.75}},
		{"all zero falls back to uniform", []float64{0, 0, 0, 0}, 0, []float64{0.25, 0.25, 0.25, 0.25}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NoisyHistogram(tt.counts, tt.sigma, nil)
			for i := range got {
				if math.Abs(got[i]-tt.want[i]) > 1e-12 {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
	// Heavy noise on small counts: still a distribution, nothing negative.
	got := NoisyHistogram([]float64{1, 0, 2, 0, 1}, 50, rand.New(rand.NewPCG(4, 4)))
	var s float64
	for _, v := range got {
		if v < 0 {
			t.Fatalf("negative share in %v", got)
		}
		s += v
	}
	if math.Abs(s-1) > 1e-9 {
		t.Errorf("shares sum to %g", s)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	pool := axes(3, 3)
	tests := []struct {
		name string
		o    Options
		pool [][]float32
	}{
		{"no output", Options{}, pool},
		{"negative sigma", Options{Output: 1, HistogramSigma: -1}, pool},
		{"infinite sigma", Options{Output: 1, HistogramSigma: math.Inf(1)}, pool},
		{"empty pool", Options{Output: 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.pool, pool, tt.o); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

// With user weights 1/n_u, one user moves the vote counts by at most 1 in
// L2 norm however many records they have: the histogram's sensitivity.
func TestWeightedVotesBoundAUsersInfluence(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	centres := axes(3, 6)
	pool := blobs(rng, centres, []int{100, 100, 100}, 0.02)
	c, err := Cluster(context.Background(), pool, Options{Clusters: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	others := blobs(rng, centres, []int{20, 10, 5}, 0.02)
	user := blobs(rng, centres, []int{4, 0, 3}, 0.02) // one user, seven records
	weights := make([]float64, len(others)+len(user))
	for i := range weights {
		weights[i] = 1
		if i >= len(others) {
			weights[i] = 1 / float64(len(user))
		}
	}
	with := c.WeightedVotes(append(append([][]float32(nil), others...), user...), weights)
	without := c.WeightedVotes(others, weights[:len(others)])
	var sq float64
	for i := range with {
		sq += (with[i] - without[i]) * (with[i] - without[i])
	}
	if l2 := math.Sqrt(sq); l2 > 1+1e-9 {
		t.Errorf("one user moved the counts by %g in L2 norm, want at most 1", l2)
	}
	if _, err := Run(context.Background(), pool, user, Options{Clusters: 3, Output: 10, PrivateWeights: []float64{1}}); err == nil {
		t.Error("weights that do not match the private rows must be refused")
	}
}
