package cluster

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
)

// KMeansOptions configures FitKMeans.
type KMeansOptions struct {
	K        int    // clusters (required, >=1; if K > distinct points, error)
	Restarts int    // independent k-means++ seedings, best inertia kept (0: 3)
	MaxIter  int    // Lloyd iterations per restart (0: 100); stop early when assignments stop changing
	Seed     uint64 // all randomness from math/rand/v2 PCG seeded from this
	Workers  int    // goroutines for assignment steps (0: runtime.GOMAXPROCS(0))
}

// KMeans is a fitted k-means model.
type KMeans struct {
	Centroids [][]float32
	Inertia   float64 // sum of squared distances of the fitted points to their centroid
	// Labels is the nearest centroid of each fitted point (what Assign on
	// the fitted rows returns), kept so callers need not assign again.
	Labels []int
	// Iterations is the number of Lloyd iterations of the kept restart.
	Iterations int
}

// restartStream separates the PCG streams of the restarts, so restart r
// draws the same numbers whatever the number of restarts; more restarts
// therefore only add candidates and never raise the best inertia.
const restartStream = 0x9e3779b97f4a7c15

// FitKMeans clusters the rows of x: k-means++ seeding (D² sampling), then
// Lloyd iterations until the assignments stop changing or MaxIter is
// reached, repeated Restarts times; the restart with the lowest inertia is
// kept (the first one on ties). Assignment steps run on Workers goroutines;
// everything else, including every sum over points, runs in point order,
// so the result depends only on x and the options other than Workers.
// An empty cluster is re-seeded with the point farthest from its centroid.
// ctx is checked between iterations. x is not modified.
func FitKMeans(ctx context.Context, x [][]float32, opts KMeansOptions) (*KMeans, error) {
	d, err := checkRows(x)
	if err != nil {
		return nil, fmt.Errorf("cluster: FitKMeans: %w", err)
	}
	if opts.K < 1 {
		return nil, fmt.Errorf("cluster: FitKMeans: %w: K = %d, want >= 1", ErrClusters, opts.K)
	}
	if opts.K > len(x) {
		return nil, fmt.Errorf("cluster: FitKMeans: %w: K = %d > %d points", ErrClusters, opts.K, len(x))
	}
	if nd := countDistinct(x, opts.K); nd < opts.K {
		return nil, fmt.Errorf("cluster: FitKMeans: %w: K = %d > %d distinct points", ErrClusters, opts.K, nd)
	}
	if opts.Restarts < 0 || opts.MaxIter < 0 {
		return nil, fmt.Errorf("cluster: FitKMeans: negative Restarts (%d) or MaxIter (%d)", opts.Restarts, opts.MaxIter)
	}
	if opts.Restarts == 0 {
		opts.Restarts = 3
	}
	if opts.MaxIter == 0 {
		opts.MaxIter = 100
	}

	var best *KMeans
	for r := range opts.Restarts {
		rng := rand.New(rand.NewPCG(opts.Seed, restartStream+uint64(r)))
		km, err := lloyd(ctx, x, d, opts, rng)
		if err != nil {
			return nil, fmt.Errorf("cluster: FitKMeans: restart %d: %w", r, err)
		}
		if best == nil || km.Inertia < best.Inertia {
			best = km
		}
	}
	return best, nil
}

// countDistinct counts distinct rows, stopping once it reaches limit. Rows
// are bucketed by a hash of their bits (-0 folded into +0 so that equal
// values hash alike) and compared exactly within a bucket.
func countDistinct(x [][]float32, limit int) int {
	buckets := make(map[uint64][]int)
	count := 0
	for i, row := range x {
		h := uint64(14695981039346656037)
		for _, v := range row {
			h ^= uint64(math.Float32bits(v + 0))
			h *= 1099511628211
		}
		dup := false
		for _, j := range buckets[h] {
			if equalRows(row, x[j]) {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		buckets[h] = append(buckets[h], i)
		if count++; count >= limit {
			break
		}
	}
	return count
}

func equalRows(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// lloyd runs one restart: seeding, then Lloyd iterations.
func lloyd(ctx context.Context, x [][]float32, d int, opts KMeansOptions, rng *rand.Rand) (*KMeans, error) {
	n, k := len(x), opts.K
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cent := seedPlusPlus(x, d, k, opts.Workers, rng)

	labels := make([]int, n)
	for i := range labels {
		labels[i] = -1
	}
	dist := make([]float32, n)
	sums := make([]float64, k*d)
	counts := make([]int, k)

	iters := 0
	fresh := false // whether dist/labels are relative to the current centroids
	for iters < opts.MaxIter {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		changed := assign(x, cent, labels, dist, opts.Workers)
		fresh = true
		if changed == 0 {
			break // converged: the centroids are the means of these labels
		}
		iters++
		update(x, d, cent, labels, dist, sums, counts)
		fresh = false
	}
	if !fresh {
		assign(x, cent, labels, dist, opts.Workers)
	}
	var inertia float64
	for _, v := range dist {
		inertia += float64(v)
	}
	return &KMeans{Centroids: cent, Inertia: inertia, Labels: labels, Iterations: iters}, nil
}

// seedPlusPlus picks k distinct points by k-means++ (D² sampling): the
// first uniformly, each next one with probability proportional to its
// squared distance to the nearest chosen point. The caller has checked
// that there are at least k distinct points, so the total weight stays
// positive until k are chosen.
func seedPlusPlus(x [][]float32, d, k, workers int, rng *rand.Rand) [][]float32 {
	n := len(x)
	flat := make([]float32, k*d)
	cent := make([][]float32, k)
	pick := func(c, i int) {
		cent[c] = flat[c*d : (c+1)*d : (c+1)*d]
		copy(cent[c], x[i])
	}
	pick(0, rng.IntN(n))
	d2 := make([]float32, n)
	parallelRange(n, workers, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d2[i] = sqDist(x[i], cent[0])
		}
	})
	for c := 1; c < k; c++ {
		var total float64
		for _, v := range d2 {
			total += float64(v)
		}
		u := rng.Float64() * total
		chosen, last := -1, -1
		var acc float64
		for i, v := range d2 {
			if v <= 0 {
				continue
			}
			last = i
			acc += float64(v)
			if acc > u {
				chosen = i
				break
			}
		}
		if chosen < 0 {
			chosen = last // u landed on the round-off at the very end
		}
		pick(c, chosen)
		parallelRange(n, workers, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				if v := sqDist(x[i], cent[c]); v < d2[i] {
					d2[i] = v
				}
			}
		})
	}
	return cent
}

// assign sets labels and dist to each point's nearest centroid (lowest
// index on ties) and its squared distance, and returns how many labels
// changed. Per-point results do not depend on the split into workers.
func assign(x, cent [][]float32, labels []int, dist []float32, workers int) int {
	var changed atomic.Int64 // an integer count, so the order of adds is irrelevant
	parallelRange(len(x), workers, func(lo, hi int) {
		c := 0
		for i := lo; i < hi; i++ {
			l, dv := nearest(x[i], cent)
			if l != labels[i] {
				labels[i] = l
				c++
			}
			dist[i] = dv
		}
		changed.Add(int64(c))
	})
	return int(changed.Load())
}

func nearest(p []float32, cent [][]float32) (int, float32) {
	best, bd := 0, sqDist(p, cent[0])
	for c := 1; c < len(cent); c++ {
		if v := sqDist(p, cent[c]); v < bd {
			best, bd = c, v
		}
	}
	return best, bd
}

// update moves each centroid to the mean of its points (sums in float64,
// in point order). Empty clusters take, one after another, the point
// farthest from its centroid among clusters with more than one point; that
// point is moved to the empty cluster before the means are taken.
func update(x [][]float32, d int, cent [][]float32, labels []int, dist []float32, sums []float64, counts []int) {
	clear(sums)
	clear(counts)
	for i, row := range x {
		l := labels[i]
		counts[l]++
		s := sums[l*d : (l+1)*d]
		for j, v := range row {
			s[j] += float64(v)
		}
	}
	for c := range cent {
		if counts[c] > 0 {
			continue
		}
		far := -1
		for i, v := range dist {
			if counts[labels[i]] > 1 && (far < 0 || v > dist[far]) {
				far = i
			}
		}
		if far < 0 {
			break // cannot happen with n >= k, kept for safety
		}
		old := labels[far]
		counts[old]--
		so := sums[old*d : (old+1)*d]
		sn := sums[c*d : (c+1)*d]
		for j, v := range x[far] {
			so[j] -= float64(v)
			sn[j] = float64(v)
		}
		counts[c] = 1
		labels[far] = c
		dist[far] = 0
	}
	for c, row := range cent {
		if counts[c] == 0 {
			continue
		}
		s := sums[c*d : (c+1)*d]
		inv := 1 / float64(counts[c])
		for j := range row {
			row[j] = float32(s[j] * inv)
		}
	}
}

// Assign returns each row's nearest centroid index (lowest index on ties),
// in parallel over GOMAXPROCS goroutines. It panics if a row's length
// differs from the centroids', which is a programming error.
func (k *KMeans) Assign(x [][]float32) []int {
	d := len(k.Centroids[0])
	for i, row := range x {
		if len(row) != d {
			panic(fmt.Sprintf("cluster: KMeans.Assign: row %d has length %d, want %d", i, len(row), d))
		}
	}
	out := make([]int, len(x))
	parallelRange(len(x), 0, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out[i], _ = nearest(x[i], k.Centroids)
		}
	})
	return out
}
