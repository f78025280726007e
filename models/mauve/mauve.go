package mauve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/dpinstruct/dpinstruct/models/cluster"
)

// Options configures MAUVE. The zero value gives the defaults.
type Options struct {
	Scale    float64  // c, default 5
	Points   int      // divergence-curve points, default 25
	VarShare float64  // PCA share, default 0.9
	Clusters int      // 0: max(2, round(min(n_p,n_q)/10)) capped at MaxAutoClusters
	Seeds    []uint64 // k-means seeds; default {1,2,3,4,5}
	Restarts int      // k-means++ restarts per seed, best inertia kept (default 1; the reference uses 5)
	MaxIter  int      // Lloyd iterations per restart (default 100; the reference uses 500)
	Workers  int      // goroutines for k-means assignment (0: GOMAXPROCS); does not change results
}

// MaxAutoClusters caps the automatic number of clusters.
const MaxAutoClusters = 500

// Defaults returns o with its zero fields set to the defaults.
func (o Options) Defaults() Options {
	if o.Scale == 0 {
		o.Scale = 5
	}
	if o.Points == 0 {
		o.Points = 25
	}
	if o.VarShare == 0 {
		o.VarShare = 0.9
	}
	if len(o.Seeds) == 0 {
		o.Seeds = []uint64{1, 2, 3, 4, 5}
	}
	if o.Restarts == 0 {
		o.Restarts = 1
	}
	if o.MaxIter == 0 {
		o.MaxIter = 100
	}
	return o
}

// AutoClusters is the default number of clusters for sets of n_p and n_q
// points: max(2, round(min(n_p, n_q)/10)), capped at MaxAutoClusters.
// Halves round to even, as Python's round in the reference does.
func AutoClusters(np, nq int) int {
	k := int(math.RoundToEven(float64(min(np, nq)) / 10))
	return min(max(2, k), MaxAutoClusters)
}

// FromHistograms computes MAUVE and the frontier integral of two
// histograms over the same bins (normalised inside; zero bins allowed).
// Only Scale and Points of o are used.
func FromHistograms(p, q []float64, o Options) (mauve, frontier float64, err error) {
	o = o.Defaults()
	if !(o.Scale > 0) || math.IsInf(o.Scale, 0) {
		return 0, 0, fmt.Errorf("mauve: Scale %v, want > 0", o.Scale)
	}
	if o.Points < 1 {
		return 0, 0, fmt.Errorf("mauve: Points %d, want >= 1", o.Points)
	}
	if len(p) != len(q) {
		return 0, 0, fmt.Errorf("mauve: histograms have %d and %d bins", len(p), len(q))
	}
	pn, err := normalise(p)
	if err != nil {
		return 0, 0, fmt.Errorf("mauve: p: %w", err)
	}
	qn, err := normalise(q)
	if err != nil {
		return 0, 0, fmt.Errorf("mauve: q: %w", err)
	}
	return area(curve(pn, qn, o.Scale, o.Points)), frontierIntegral(pn, qn), nil
}

// normalise returns h / sum(h) after checking that h is a histogram.
func normalise(h []float64) ([]float64, error) {
	if len(h) == 0 {
		return nil, errors.New("empty histogram")
	}
	var s float64
	for i, v := range h {
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("bin %d is %v, want finite and >= 0", i, v)
		}
		s += v
	}
	if s == 0 {
		return nil, errors.New("histogram sums to 0")
	}
	out := make([]float64, len(h))
	for i, v := range h {
		out[i] = v / s
	}
	return out, nil
}

// kl is KL(a||b) in nats: +Inf if a has mass where b has none.
func kl(a, b []float64) float64 {
	var s float64
	for i, ai := range a {
		switch {
		case ai == 0:
		case b[i] == 0:
			return math.Inf(1)
		default:
			s += ai * math.Log(ai/b[i])
		}
	}
	return s
}

type point struct{ x, y float64 }

// curve returns the divergence curve: the end point (1, 0), one point per
// mixture weight w in linspace(1e-6, 1-1e-6, n) (increasing w), and the
// end point (0, 1).
func curve(p, q []float64, c float64, n int) []point {
	const lo, hi = 1e-6, 1 - 1e-6
	pts := []point{{1, 0}}
	r := make([]float64, len(p))
	for i := range n {
		w := lo
		if n > 1 {
			// numpy's linspace: start + i*step, with the last value exact.
			w = lo + float64(i)*((hi-lo)/float64(n-1))
			if i == n-1 {
				w = hi
			}
		}
		for j := range r {
			// q + w(p-q) rather than wp + (1-w)q: exact where p and q
			// agree, so identical histograms give KL = 0 exactly.
			r[j] = q[j] + w*(p[j]-q[j])
		}
		// KL >= 0; round-off must not lift a point above 1.
		pts = append(pts, point{math.Exp(-c * max(kl(q, r), 0)), math.Exp(-c * max(kl(p, r), 0))})
	}
	return append(pts, point{0, 1})
}

// area is the mean of the trapezoid area under the points sorted by x and
// the one with the axes swapped (points sorted by y). Ties are ordered
// along the decreasing frontier; see the package comment.
func area(pts []point) float64 {
	byX := slices.Clone(pts)
	slices.SortStableFunc(byX, func(a, b point) int {
		if a.x != b.x {
			return cmpF(a.x, b.x)
		}
		return cmpF(b.y, a.y)
	})
	byY := slices.Clone(pts)
	slices.SortStableFunc(byY, func(a, b point) int {
		if a.y != b.y {
			return cmpF(a.y, b.y)
		}
		return cmpF(b.x, a.x)
	})
	var ax, ay float64
	for i := 1; i < len(pts); i++ {
		ax += (byX[i].x - byX[i-1].x) * (byX[i].y + byX[i-1].y) / 2
		ay += (byY[i].y - byY[i-1].y) * (byY[i].x + byY[i-1].x) / 2
	}
	return (ax + ay) / 2
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// frontierIntegral is the reference's closed form; see the package
// comment.
func frontierIntegral(p, q []float64) float64 {
	var total float64
	for i, pi := range p {
		qi := q[i]
		switch {
		case pi == 0 && qi == 0:
		case pi == 0:
			total += qi / 4
		case qi == 0:
			total += pi / 4
		case math.Abs(pi-qi) > 1e-8:
			total += 0.25*(pi+qi) - 0.5*pi*qi*(math.Log(pi)-math.Log(qi))/(pi-qi)
		}
		// |p_i - q_i| <= 1e-8: the bin's contribution vanishes (to O(δ²)).
	}
	return 2 * total
}

// SeedResult is MAUVE for one k-means seed.
type SeedResult struct {
	Seed            uint64
	Mauve, Frontier float64
	P, Q            []float64 // histograms over clusters
}

// Result is MAUVE over several k-means seeds.
type Result struct {
	Mauve, MauveStd       float64 // mean and sample (n-1) standard deviation over seeds; std 0 for one seed
	Frontier, FrontierStd float64 // the same for the frontier integral
	Clusters              int
	Dims                  int // PCA dimensions kept
	PerSeed               []SeedResult
}

// Compute runs the full pipeline on feature rows of P (real) and Q
// (synthetic): copy, stack, normalise, PCA (fit on the stacked set), then
// per seed k-means on the stacked set and histograms. Never modifies its
// inputs. ctx is checked between seeds and inside k-means.
func Compute(ctx context.Context, p, q [][]float32, o Options) (*Result, error) {
	o = o.Defaults()
	if len(p) == 0 || len(q) == 0 {
		return nil, fmt.Errorf("mauve: Compute: %d P rows and %d Q rows, want both > 0", len(p), len(q))
	}
	if !(o.VarShare > 0 && o.VarShare <= 1) {
		return nil, fmt.Errorf("mauve: Compute: VarShare %v not in (0,1]", o.VarShare)
	}
	if o.Clusters < 0 {
		return nil, fmt.Errorf("mauve: Compute: Clusters %d, want >= 0", o.Clusters)
	}
	// Check the curve options before the expensive part.
	if _, _, err := FromHistograms([]float64{1}, []float64{1}, o); err != nil {
		return nil, fmt.Errorf("mauve: Compute: %w", err)
	}
	k := o.Clusters
	if k == 0 {
		k = AutoClusters(len(p), len(q))
	}

	// One copy: normalising must not touch the caller's rows.
	x := make([][]float32, 0, len(p)+len(q))
	for _, row := range p {
		x = append(x, slices.Clone(row))
	}
	for _, row := range q {
		x = append(x, slices.Clone(row))
	}
	cluster.Normalize(x)
	pca, err := cluster.FitPCA(x, o.VarShare)
	if err != nil {
		return nil, fmt.Errorf("mauve: Compute: PCA of %d+%d rows: %w", len(p), len(q), err)
	}
	z := pca.Transform(x)

	res := &Result{Clusters: k, Dims: pca.Dims()}
	for _, seed := range o.Seeds {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("mauve: Compute: %w", err)
		}
		km, err := cluster.FitKMeans(ctx, z, cluster.KMeansOptions{
			K: k, Restarts: o.Restarts, MaxIter: o.MaxIter, Seed: seed, Workers: o.Workers,
		})
		if err != nil {
			return nil, fmt.Errorf("mauve: Compute: k-means (K=%d, seed %d): %w", k, seed, err)
		}
		hp, hq := make([]float64, k), make([]float64, k)
		for i, l := range km.Labels {
			if i < len(p) {
				hp[l]++
			} else {
				hq[l]++
			}
		}
		m, f, err := FromHistograms(hp, hq, o)
		if err != nil {
			return nil, fmt.Errorf("mauve: Compute: seed %d: %w", seed, err)
		}
		for i := range hp {
			hp[i] /= float64(len(p))
			hq[i] /= float64(len(q))
		}
		res.PerSeed = append(res.PerSeed, SeedResult{Seed: seed, Mauve: m, Frontier: f, P: hp, Q: hq})
	}
	ms := make([]float64, len(res.PerSeed))
	fs := make([]float64, len(res.PerSeed))
	for i, s := range res.PerSeed {
		ms[i], fs[i] = s.Mauve, s.Frontier
	}
	res.Mauve, res.MauveStd = meanStd(ms)
	res.Frontier, res.FrontierStd = meanStd(fs)
	return res, nil
}

// meanStd returns the mean and the sample (n-1) standard deviation (0 for
// a single value).
func meanStd(v []float64) (float64, float64) {
	var s float64
	for _, x := range v {
		s += x
	}
	m := s / float64(len(v))
	if len(v) < 2 {
		return m, 0
	}
	var ss float64
	for _, x := range v {
		ss += (x - m) * (x - m)
	}
	return m, math.Sqrt(ss / float64(len(v)-1))
}
