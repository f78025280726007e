package mauve

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.9f, want %.9f (±%g)", name, got, want, tol)
	}
}

func TestFromHistogramsPublishedValue(t *testing.T) {
	tests := []struct {
		name string
		p, q []float64
	}{
		{"p q", []float64{.5, .5}, []float64{.9, .1}},
		{"q p (symmetric)", []float64{.9, .1}, []float64{.5, .5}},
		{"bins reordered", []float64{.5, .5}, []float64{.1, .9}},
		{"unnormalised", []float64{5, 5}, []float64{90, 10}},
		{"extra empty bin", []float64{.5, 0, .5}, []float64{.9, 0, .1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, f, err := FromHistograms(tc.p, tc.q, Options{})
			if err != nil {
				t.Fatal(err)
			}
			near(t, "MAUVE", m, 0.671096, 1e-6)
			// Closed form, checked against the numerical integral below.
			near(t, "frontier", f, 0.137560263, 1e-8)
		})
	}
}

func TestFromHistogramsIdentical(t *testing.T) {
	for _, h := range [][]float64{{1}, {.5, .5}, {.1, .2, .3, .4}, {0, 3, 0, 1, 7}} {
		m, f, err := FromHistograms(h, slices.Clone(h), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m != 1 || f != 0 {
			t.Errorf("FromHistograms(%v, same) = %v, %v; want 1, 0", h, m, f)
		}
	}
}

func TestFromHistogramsDisjoint(t *testing.T) {
	// With R = [w, 1-w] the curve is x = (1-w)^c, y = w^c, whose area tends
	// to c B(c, c+1) = 5·4!·5!/10! ≈ 0.003968 for c = 5 as the grid
	// refines; 25 points over-estimate it slightly (the curve is convex).
	limit := 5.0 * 24 * 120 / 3628800
	m, f, err := FromHistograms([]float64{1, 0}, []float64{0, 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m < limit || m > 0.005 {
		t.Errorf("disjoint MAUVE (25 points) = %v, want in [%v, 0.005]", m, limit)
	}
	near(t, "disjoint frontier", f, 1, 1e-12)
	m, _, err = FromHistograms([]float64{3, 0, 1}, []float64{0, 2, 0}, Options{Points: 4000})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "disjoint MAUVE (4000 points)", m, limit, 1e-5)
}

func TestFromHistogramsOrdering(t *testing.T) {
	// Closer histograms score higher, the frontier integral lower, and
	// both are symmetric in (p, q).
	rng := rand.New(rand.NewPCG(1, 1))
	p := make([]float64, 20)
	for i := range p {
		p[i] = rng.Float64()
	}
	prevM, prevF := 1.0, 0.0
	for _, eps := range []float64{0.05, 0.2, 0.5, 1, 3} {
		q := make([]float64, len(p))
		for i := range q {
			q[i] = p[i] * math.Exp(eps*rng.NormFloat64())
		}
		m, f, err := FromHistograms(p, q, Options{})
		if err != nil {
			t.Fatal(err)
		}
		m2, f2, err := FromHistograms(q, p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		near(t, "MAUVE(q,p)", m2, m, 1e-12)
		near(t, "FI(q,p)", f2, f, 1e-12)
		if m > prevM || f < prevF || m <= 0 || m >= 1 || f <= 0 || f >= 1 {
			t.Errorf("eps %v: MAUVE %v (previous %v), FI %v (previous %v)", eps, m, prevM, f, prevF)
		}
		prevM, prevF = m, f
	}
	// A larger scale c penalises the same gap more.
	p, q := []float64{.5, .5}, []float64{.9, .1}
	m5, _, _ := FromHistograms(p, q, Options{})
	m10, _, _ := FromHistograms(p, q, Options{Scale: 10})
	if m10 >= m5 {
		t.Errorf("MAUVE with c=10 (%v) >= with c=5 (%v)", m10, m5)
	}
}

// TestFrontierIntegralDefinition checks the closed form against
// 2 ∫_0^1 [λ KL(p||R_λ) + (1-λ) KL(q||R_λ)] dλ by the midpoint rule.
func TestFrontierIntegralDefinition(t *testing.T) {
	tests := [][2][]float64{
		{{.5, .5}, {.9, .1}},
		{{.2, .3, .5, 0}, {.1, .1, .4, .4}},
		{{1, 0}, {0, 1}},
		{{.25, .25, .25, .25}, {.25, .25, .25, .25}},
	}
	for _, tc := range tests {
		p, q := tc[0], tc[1]
		const n = 20000
		r := make([]float64, len(p))
		var s float64
		for i := range n {
			l := (float64(i) + 0.5) / n
			for j := range r {
				r[j] = l*p[j] + (1-l)*q[j]
			}
			s += l*kl(p, r) + (1-l)*kl(q, r)
		}
		_, f, err := FromHistograms(p, q, Options{})
		if err != nil {
			t.Fatal(err)
		}
		near(t, "frontier integral", f, 2*s/n, 1e-6)
	}
}

func TestFromHistogramsErrors(t *testing.T) {
	tests := []struct {
		name string
		p, q []float64
		o    Options
	}{
		{"length mismatch", []float64{1, 2}, []float64{1}, Options{}},
		{"empty", nil, nil, Options{}},
		{"negative bin", []float64{1, -1}, []float64{1, 1}, Options{}},
		{"NaN bin", []float64{1, 1}, []float64{math.NaN(), 1}, Options{}},
		{"Inf bin", []float64{math.Inf(1), 1}, []float64{1, 1}, Options{}},
		{"zero sum", []float64{0, 0}, []float64{1, 1}, Options{}},
		{"negative scale", []float64{1, 1}, []float64{1, 1}, Options{Scale: -1}},
		{"negative points", []float64{1, 1}, []float64{1, 1}, Options{Points: -3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := FromHistograms(tc.p, tc.q, tc.o); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestAutoClusters(t *testing.T) {
	tests := []struct{ np, nq, want int }{
		{1, 1, 2}, {10, 1000, 2}, {25, 30, 2}, {35, 40, 4}, {1000, 2000, 100},
		{4990, 6000, 499}, {5000, 5000, 500}, {100000, 50000, 500},
	}
	for _, tc := range tests {
		if got := AutoClusters(tc.np, tc.nq); got != tc.want {
			t.Errorf("AutoClusters(%d, %d) = %d, want %d", tc.np, tc.nq, got, tc.want)
		}
	}
}

// mixture draws n rows in d dimensions from an equal-weight Gaussian
// mixture with the given centres and standard deviation sd.
func mixture(t *testing.T, rng *rand.Rand, centres [][]float64, n int, sd float64) [][]float32 {
	t.Helper()
	x := make([][]float32, n)
	for i := range x {
		mu := centres[rng.IntN(len(centres))]
		row := make([]float32, len(mu))
		for j, m := range mu {
			row[j] = float32(m + sd*rng.NormFloat64())
		}
		x[i] = row
	}
	return x
}

// centresOn returns unit-length-ish centres along the given axes of R^d
// (L2 normalisation keeps them apart).
func centresOn(d int, axes ...int) [][]float64 {
	var c [][]float64
	for _, a := range axes {
		mu := make([]float64, d)
		mu[a] = 3
		c = append(c, mu)
	}
	return c
}

func cloneRows(x [][]float32) [][]float32 {
	out := make([][]float32, len(x))
	for i, r := range x {
		out[i] = slices.Clone(r)
	}
	return out
}

func equalRows(a, b [][]float32) bool {
	return slices.EqualFunc(a, b, func(x, y []float32) bool { return slices.Equal(x, y) })
}

func TestComputeSameDistribution(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	const d = 12
	centres := centresOn(d, 0, 1, 2, 3, 4)
	// With K = n/10 the histograms' sampling noise keeps MAUVE of two
	// samples of one distribution around 0.96 whatever n is; n = 2000
	// makes the spread over seeds small (about 0.003).
	p := mixture(t, rng, centres, 2000, 0.6)
	q := mixture(t, rng, centres, 2000, 0.6)
	p0, q0 := cloneRows(p), cloneRows(q)

	res, err := Compute(context.Background(), p, q, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mauve <= 0.95 {
		t.Errorf("same distribution: mean MAUVE %v (std %v), want > 0.95; per seed %v", res.Mauve, res.MauveStd, perSeed(res))
	}
	if res.Frontier >= 0.1 {
		t.Errorf("same distribution: frontier integral %v, want < 0.1", res.Frontier)
	}
	if res.Clusters != 200 || len(res.PerSeed) != 5 {
		t.Errorf("Clusters %d, %d seeds; want 200 and 5", res.Clusters, len(res.PerSeed))
	}
	for _, s := range res.PerSeed {
		if len(s.P) != res.Clusters || math.Abs(sum(s.P)-1) > 1e-12 || math.Abs(sum(s.Q)-1) > 1e-12 {
			t.Errorf("seed %d: histograms of %d bins summing to %v, %v", s.Seed, len(s.P), sum(s.P), sum(s.Q))
		}
	}
	if !equalRows(p, p0) || !equalRows(q, q0) {
		t.Fatal("Compute modified its inputs")
	}

}

func TestComputeDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 7))
	centres := centresOn(8, 0, 1, 2, 3)
	p := mixture(t, rng, centres, 300, 0.7)
	q := mixture(t, rng, centres, 250, 0.7)
	run := func(workers int) *Result {
		t.Helper()
		res, err := Compute(context.Background(), p, q, Options{Seeds: []uint64{1, 2, 3}, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b, c := run(0), run(1), run(3)
	for _, o := range []*Result{b, c} {
		if o.Mauve != a.Mauve || o.Frontier != a.Frontier || !slices.Equal(perSeed(o), perSeed(a)) {
			t.Errorf("not deterministic: %v vs %v", perSeed(o), perSeed(a))
		}
	}
	if s := a.PerSeed; s[0].Mauve == s[1].Mauve && s[1].Mauve == s[2].Mauve {
		t.Errorf("all seeds gave MAUVE %v; are the seeds used?", s[0].Mauve)
	}
	if a.MauveStd <= 0 {
		t.Errorf("MauveStd = %v over differing seeds", a.MauveStd)
	}
}

func TestComputeDifferentDistributions(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	const d = 12
	p := mixture(t, rng, centresOn(d, 0, 1, 2), 400, 0.4)
	q := mixture(t, rng, centresOn(d, 6, 7, 8), 300, 0.4)
	res, err := Compute(context.Background(), p, q, Options{Seeds: []uint64{7, 8}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mauve >= 0.2 {
		t.Errorf("unrelated sets: MAUVE %v, want < 0.2", res.Mauve)
	}
	if res.Frontier <= 0.8 {
		t.Errorf("unrelated sets: frontier integral %v, want > 0.8", res.Frontier)
	}
	if res.Clusters != 30 {
		t.Errorf("Clusters = %d, want 30", res.Clusters)
	}
}

func TestComputeErrors(t *testing.T) {
	good := [][]float32{{1, 2}, {3, 4}, {5, 7}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		p, q [][]float32
		o    Options
	}{
		{"empty p", context.Background(), nil, good, Options{}},
		{"width mismatch", context.Background(), good, [][]float32{{1, 2, 3}}, Options{}},
		{"NaN", context.Background(), good, [][]float32{{1, float32(math.NaN())}}, Options{}},
		{"too many clusters", context.Background(), good, good, Options{Clusters: 7}},
		{"bad share", context.Background(), good, good, Options{VarShare: 2}},
		{"bad scale", context.Background(), good, good, Options{Scale: -5}},
		{"cancelled", cancelled, good, good, Options{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Compute(tc.ctx, tc.p, tc.q, tc.o); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func perSeed(r *Result) []float64 {
	var v []float64
	for _, s := range r.PerSeed {
		v = append(v, s.Mauve, s.Frontier)
	}
	return v
}

func sum(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}
