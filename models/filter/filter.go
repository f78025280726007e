package filter

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/dpinstruct/dpinstruct/models/cluster"
)

// Options configures Run. The zero value of each field but Output picks
// the documented default.
type Options struct {
	// Clusters is K. 0: max(2, min(1000, pool/10)), the reference K capped
	// so that each cluster holds about ten synthetic samples on average.
	Clusters int
	// VarShare is the share of variance PCA keeps (0: 0.9).
	VarShare float64
	// HistogramSigma is the noise std added to each cluster's vote count.
	// Its privacy cost is that of one Gaussian mechanism with sensitivity 1
	// (per record; per user when the caller bounds each user to one
	// record per window and sums votes per user). 0 releases the exact
	// histogram and is for tests and public data only.
	HistogramSigma float64
	// Output is n_out, how many synthetic samples to select. Required.
	Output int
	// Seed drives clustering and the uniform draws within clusters
	// (public randomness: both touch synthetic data only).
	Seed uint64
	// Restarts of k-means (0: 3).
	Restarts int
	// FitSample caps how many synthetic vectors fit PCA and k-means (the
	// reference clusters a sample Z of the pool); 0: all.
	FitSample int
	// Noise, when set, is the Gaussian source for the histogram: for
	// tests only. Nil means a ChaCha8 generator seeded from crypto/rand.
	Noise *rand.Rand
	// PrivateWeights, when set, weighs each private vector's vote (one
	// weight per private row). User-level privacy gives each of a user's
	// n_u records the weight 1/n_u, so one user moves the counts by at
	// most 1 in L2 norm and sigma_h keeps its meaning. Nil: weight 1.
	PrivateWeights []float64
}

// Result is what Run selected and the DP statistics behind it.
type Result struct {
	// Selected indexes the synthetic pool, grouped by cluster;
	// SelectedCluster[i] is Selected[i]'s cluster.
	Selected        []int
	SelectedCluster []int
	// Histogram is the DP estimate of the private distribution over
	// clusters (noisy counts clamped at zero, normalised). Publishable.
	Histogram []float64
	// PoolCounts is the synthetic pool's size per cluster (public).
	PoolCounts []int
	// Quota is floor(Output * Histogram[k]) per cluster; Short lists the
	// clusters whose quota exceeded the pool (they gave all they had).
	Quota []int
	Short []int
	// Clusters is K; Components the PCA dimensions kept.
	Clusters, Components int
}

// Run clusters the synthetic pool, counts the private records' nearest
// clusters with Gaussian noise, and draws min(floor(Output*p_k), |S_k|)
// synthetic samples from each cluster k uniformly without replacement.
// Neither input is modified.
func Run(ctx context.Context, synthetic, private [][]float32, o Options) (*Result, error) {
	if o.Output < 1 {
		return nil, fmt.Errorf("filter: Output must be >= 1, got %d", o.Output)
	}
	if !(o.HistogramSigma >= 0) || math.IsInf(o.HistogramSigma, 0) {
		return nil, fmt.Errorf("filter: HistogramSigma must be finite and >= 0, got %v", o.HistogramSigma)
	}
	c, err := Cluster(ctx, synthetic, o)
	if err != nil {
		return nil, err
	}
	noise := o.Noise
	if noise == nil {
		noise = cryptoSeeded()
	}
	if o.PrivateWeights != nil && len(o.PrivateWeights) != len(private) {
		return nil, fmt.Errorf("filter: %d weights for %d private rows", len(o.PrivateWeights), len(private))
	}
	hist := NoisyHistogram(c.WeightedVotes(private, o.PrivateWeights), o.HistogramSigma, noise)
	res := c.Select(hist, o.Output, o.Seed)
	return res, nil
}

// Clustering is the synthetic pool's clustering: PCA and k-means fitted on
// synthetic vectors only, and each pool member's cluster.
type Clustering struct {
	PCA     *cluster.PCA
	KMeans  *cluster.KMeans
	Members [][]int // pool indices per cluster
}

// Cluster fits the filter's clustering on the synthetic pool (see Options
// for the defaults of K, the variance share, restarts and the fit sample).
func Cluster(ctx context.Context, synthetic [][]float32, o Options) (*Clustering, error) {
	if len(synthetic) == 0 {
		return nil, errors.New("filter: empty synthetic pool")
	}
	share := o.VarShare
	if share == 0 {
		share = 0.9
	}
	k := o.Clusters
	if k == 0 {
		k = max(2, min(1000, len(synthetic)/10))
	}
	restarts := o.Restarts
	if restarts == 0 {
		restarts = 3
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed_c1a5))
	syn := normalizedCopy(synthetic)
	fit := syn
	if o.FitSample > 0 && o.FitSample < len(syn) {
		fit = make([][]float32, o.FitSample)
		for i, j := range rng.Perm(len(syn))[:o.FitSample] {
			fit[i] = syn[j]
		}
	}
	pca, err := cluster.FitPCA(fit, share)
	if err != nil {
		return nil, fmt.Errorf("filter: PCA of the synthetic pool: %w", err)
	}
	km, err := cluster.FitKMeans(ctx, pca.Transform(fit), cluster.KMeansOptions{K: min(k, len(fit)), Restarts: restarts, Seed: o.Seed})
	if err != nil {
		return nil, fmt.Errorf("filter: k-means of the synthetic pool: %w", err)
	}
	c := &Clustering{PCA: pca, KMeans: km, Members: make([][]int, len(km.Centroids))}
	for i, a := range km.Assign(pca.Transform(syn)) {
		c.Members[a] = append(c.Members[a], i)
	}
	return c, nil
}

// K is the number of clusters.
func (c *Clustering) K() int { return len(c.Members) }

// Select draws min(floor(output*hist[k]), |S_k|) pool members of each
// cluster k, uniformly without replacement (seeded: this is
// post-processing of the DP histogram and the public pool).
func (c *Clustering) Select(hist []float64, output int, seed uint64) *Result {
	k := c.K()
	rng := rand.New(rand.NewPCG(seed, 0x5eed_5e1ec7))
	res := &Result{Histogram: hist, Clusters: k, Components: len(c.PCA.Components),
		PoolCounts: make([]int, k), Quota: make([]int, k)}
	for cl := range k {
		members := c.Members[cl]
		res.PoolCounts[cl] = len(members)
		want := int(math.Floor(float64(output) * hist[cl]))
		res.Quota[cl] = want
		if want > len(members) {
			res.Short = append(res.Short, cl)
			want = len(members)
		}
		// A partial Fisher-Yates shuffle: uniform without replacement.
		m := append([]int(nil), members...)
		for i := range want {
			j := i + rng.IntN(len(m)-i)
			m[i], m[j] = m[j], m[i]
			res.Selected = append(res.Selected, m[i])
			res.SelectedCluster = append(res.SelectedCluster, cl)
		}
	}
	return res
}

// Votes counts, per cluster, the private records whose nearest centroid
// (after normalisation and the synthetic PCA) it is. The counts are
// private: release them only through NoisyHistogram.
func (c *Clustering) Votes(private [][]float32) []float64 { return c.WeightedVotes(private, nil) }

// WeightedVotes is Votes with a weight per private row (nil: 1 each).
func (c *Clustering) WeightedVotes(private [][]float32, weights []float64) []float64 {
	counts := make([]float64, c.K())
	if len(private) == 0 {
		return counts
	}
	for i, a := range c.KMeans.Assign(c.PCA.Transform(normalizedCopy(private))) {
		w := 1.0
		if weights != nil {
			w = weights[i]
		}
		counts[a] += w
	}
	return counts
}

// NoisyHistogram adds N(0, sigma^2) to each count, clamps at zero and
// normalises (NoisyCounts, then Normalise).
func NoisyHistogram(counts []float64, sigma float64, noise *rand.Rand) []float64 {
	return Normalise(NoisyCounts(counts, sigma, noise))
}

// NoisyCounts adds N(0, sigma^2) to each count and clamps at zero: the
// Gaussian mechanism on a sensitivity-1 histogram, then post-processing.
// noise may be nil when sigma is 0.
func NoisyCounts(counts []float64, sigma float64, noise *rand.Rand) []float64 {
	out := make([]float64, len(counts))
	for i, c := range counts {
		v := c
		if sigma > 0 {
			v += sigma * noise.NormFloat64()
		}
		out[i] = max(0, v)
	}
	return out
}

// Normalise scales non-negative counts to sum to one. If every count is
// zero it returns the uniform distribution (nothing private survived the
// noise, so nothing private is used).
func Normalise(counts []float64) []float64 {
	var total float64
	for _, c := range counts {
		total += c
	}
	out := make([]float64, len(counts))
	for i, c := range counts {
		if total > 0 {
			out[i] = c / total
		} else {
			out[i] = 1 / float64(len(out))
		}
	}
	return out
}

func normalizedCopy(x [][]float32) [][]float32 {
	out := make([][]float32, len(x))
	for i, r := range x {
		out[i] = append([]float32(nil), r...)
	}
	cluster.Normalize(out)
	return out
}

// cryptoSeeded returns a ChaCha8 generator with a 32-byte seed from
// crypto/rand. The seed stays inside the generator.
func cryptoSeeded() *rand.Rand {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (Go 1.24+)
	return rand.New(rand.NewChaCha8(seed))
}
