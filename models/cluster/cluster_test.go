package cluster

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// gaussianBlobs draws per points around each centre with standard
// deviation sd, and returns the rows and the true blob of each row.
func gaussianBlobs(t testing.TB, rng *rand.Rand, centres [][]float64, per int, sd float64) ([][]float32, []int) {
	t.Helper()
	var x [][]float32
	var truth []int
	for c, mu := range centres {
		for range per {
			row := make([]float32, len(mu))
			for j, m := range mu {
				row[j] = float32(m + sd*rng.NormFloat64())
			}
			x = append(x, row)
			truth = append(truth, c)
		}
	}
	return x, truth
}

func uniformRows(rng *rand.Rand, n, d int) [][]float32 {
	x := make([][]float32, n)
	for i := range x {
		x[i] = make([]float32, d)
		for j := range x[i] {
			x[i][j] = rng.Float32()
		}
	}
	return x
}

// samePartition reports whether labels a and b induce the same partition,
// i.e. are equal up to a permutation of label values.
func samePartition(t *testing.T, a, b []int) bool {
	t.Helper()
	if len(a) != len(b) {
		return false
	}
	ab, ba := map[int]int{}, map[int]int{}
	for i := range a {
		if v, ok := ab[a[i]]; ok && v != b[i] {
			return false
		}
		if v, ok := ba[b[i]]; ok && v != a[i] {
			return false
		}
		ab[a[i]], ba[b[i]] = b[i], a[i]
	}
	return true
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   []float32
		want []float32
	}{
		{"3-4-5", []float32{3, 4}, []float32{0.6, 0.8}},
		{"zero stays zero", []float32{0, 0, 0}, []float32{0, 0, 0}},
		{"negative", []float32{-2}, []float32{-1}},
		{"already unit", []float32{0, 1, 0}, []float32{0, 1, 0}},
		{"tiny values", []float32{1e-30, 1e-30}, []float32{float32(math.Sqrt(0.5)), float32(math.Sqrt(0.5))}},
		{"empty row", []float32{}, []float32{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := [][]float32{slices.Clone(tc.in)}
			Normalize(x)
			for j := range tc.want {
				if math.Abs(float64(x[0][j]-tc.want[j])) > 1e-6 {
					t.Fatalf("Normalize(%v) = %v, want %v", tc.in, x[0], tc.want)
				}
			}
		})
	}
}

// rotated3D returns n points of a Gaussian with standard deviations sds
// along the columns of rot, shifted by mean.
func rotated3D(rng *rand.Rand, n int, sds, mean []float64, rot [][]float64) [][]float32 {
	x := make([][]float32, n)
	for i := range x {
		z := make([]float64, len(sds))
		for a, s := range sds {
			z[a] = s * rng.NormFloat64()
		}
		row := make([]float32, len(mean))
		for j := range row {
			v := mean[j]
			for a := range sds {
				v += rot[a][j] * z[a]
			}
			row[j] = float32(v)
		}
		x[i] = row
	}
	return x
}

// rotation returns the orthonormal axes of a fixed 3-D rotation (rows).
func rotation() [][]float64 {
	// Rotation about (1,1,1)/sqrt(3) by 40 degrees, as rows of R^T.
	th := 40 * math.Pi / 180
	c, s := math.Cos(th), math.Sin(th)
	u := []float64{1 / math.Sqrt(3), 1 / math.Sqrt(3), 1 / math.Sqrt(3)}
	r := make([][]float64, 3)
	for i := range 3 {
		r[i] = make([]float64, 3)
		for j := range 3 {
			v := u[i] * u[j] * (1 - c)
			if i == j {
				v += c
			}
			r[i][j] = v
		}
	}
	r[0][1] -= u[2] * s
	r[0][2] += u[1] * s
	r[1][0] += u[2] * s
	r[1][2] -= u[0] * s
	r[2][0] -= u[1] * s
	r[2][1] += u[0] * s
	return r
}

func TestFitPCARecoversAxes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rot := rotation()
	sds := []float64{5, 2, 0.5}
	mean := []float64{10, -3, 7}
	x := rotated3D(rng, 20000, sds, mean, rot)

	p, err := FitPCA(x, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Dims() != 3 || p.Share < 1-1e-9 {
		t.Fatalf("share 1 kept %d components (share %v), want 3 and 1", p.Dims(), p.Share)
	}
	for j := range mean {
		if math.Abs(p.Mean[j]-mean[j]) > 0.1 {
			t.Errorf("Mean[%d] = %v, want %v", j, p.Mean[j], mean[j])
		}
	}
	for a := range sds {
		var dot, norm float64
		for j := range 3 {
			dot += p.Components[a][j] * rot[a][j]
			norm += p.Components[a][j] * p.Components[a][j]
		}
		if math.Abs(norm-1) > 1e-9 {
			t.Errorf("component %d has norm^2 %v", a, norm)
		}
		if math.Abs(dot) < 0.995 {
			t.Errorf("component %d = %v, |cos| to true axis %v is %v", a, p.Components[a], rot[a], math.Abs(dot))
		}
		want := sds[a] * sds[a]
		if math.Abs(p.Variance[a]-want) > 0.05*want {
			t.Errorf("Variance[%d] = %v, want about %v", a, p.Variance[a], want)
		}
	}
	var o float64
	for j := range 3 {
		o += p.Components[0][j] * p.Components[1][j]
	}
	if math.Abs(o) > 1e-9 {
		t.Errorf("components 0 and 1 not orthogonal: %v", o)
	}

	// Share rule: the fewest leading components reaching the share.
	total := p.Variance[0] + p.Variance[1] + p.Variance[2]
	tests := []struct {
		share float64
		want  int
	}{
		{0.5, 1}, {0.8, 1}, {0.9, 2}, {0.98, 2}, {0.999, 3}, {1, 3},
	}
	for _, tc := range tests {
		q, err := FitPCA(x, tc.share)
		if err != nil {
			t.Fatal(err)
		}
		if q.Dims() != tc.want {
			t.Errorf("share %v: kept %d components, want %d", tc.share, q.Dims(), tc.want)
		}
		var kept float64
		for _, v := range q.Variance {
			kept += v
		}
		if q.Share < tc.share || math.Abs(q.Share-kept/total) > 1e-9 {
			t.Errorf("share %v: Share = %v, kept/total = %v", tc.share, q.Share, kept/total)
		}
	}
}

func TestPCATransform(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := rotated3D(rng, 500, []float64{3, 1, 0.2}, []float64{1, 2, 3}, rotation())
	orig := make([][]float32, len(x))
	for i := range x {
		orig[i] = slices.Clone(x[i])
	}
	p, err := FitPCA(x, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	m := make([]float32, 3)
	for j, v := range p.Mean {
		m[j] = float32(v)
	}
	y := p.Transform([][]float32{m})
	for _, v := range y[0] {
		if math.Abs(float64(v)) > 1e-5 {
			t.Fatalf("Transform(mean) = %v, want 0", y[0])
		}
	}
	z := p.Transform(x)
	if len(z) != len(x) || len(z[0]) != p.Dims() {
		t.Fatalf("Transform shape %dx%d, want %dx%d", len(z), len(z[0]), len(x), p.Dims())
	}
	// Projected coordinates are centred, and their variance is the
	// component's.
	for c := range p.Dims() {
		var s, ss float64
		for _, row := range z {
			s += float64(row[c])
			ss += float64(row[c]) * float64(row[c])
		}
		if math.Abs(s/float64(len(z))) > 1e-4 {
			t.Errorf("component %d: mean of projection %v", c, s/float64(len(z)))
		}
		if v := ss / float64(len(z)-1); math.Abs(v-p.Variance[c]) > 1e-3*p.Variance[c] {
			t.Errorf("component %d: projected variance %v, want %v", c, v, p.Variance[c])
		}
	}
	for i := range x {
		if !slices.Equal(x[i], orig[i]) {
			t.Fatal("FitPCA/Transform modified the input")
		}
	}
}

func TestFitPCAConstant(t *testing.T) {
	x := [][]float32{{1, 2}, {1, 2}, {1, 2}}
	p, err := FitPCA(x, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	if p.Dims() != 1 || p.Share != 1 || p.Variance[0] != 0 {
		t.Fatalf("constant data: %d comps, share %v, variance %v", p.Dims(), p.Share, p.Variance)
	}
}

func TestFitPCAErrors(t *testing.T) {
	good := [][]float32{{1, 2}, {3, 4}}
	tests := []struct {
		name  string
		x     [][]float32
		share float64
		is    error
	}{
		{"share 0", good, 0, nil},
		{"share > 1", good, 1.5, nil},
		{"share NaN", good, math.NaN(), nil},
		{"no rows", nil, 0.9, ErrEmpty},
		{"zero width", [][]float32{{}, {}}, 0.9, ErrEmpty},
		{"ragged", [][]float32{{1, 2}, {3}}, 0.9, ErrRagged},
		{"NaN", [][]float32{{1, 2}, {float32(math.NaN()), 4}}, 0.9, ErrNonFinite},
		{"Inf", [][]float32{{1, float32(math.Inf(-1))}, {3, 4}}, 0.9, ErrNonFinite},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FitPCA(tc.x, tc.share)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v does not wrap %v", err, tc.is)
			}
		})
	}
}

func TestFitKMeansBlobs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const d = 8
	var centres [][]float64
	for c := range 6 {
		mu := make([]float64, d)
		mu[c%d] = 10
		if c >= d/2 {
			mu[(c+1)%d] = -10
		}
		centres = append(centres, mu)
	}
	x, truth := gaussianBlobs(t, rng, centres, 80, 0.5)
	for _, seed := range []uint64{1, 2, 3} {
		km, err := FitKMeans(context.Background(), x, KMeansOptions{K: len(centres), Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		if !samePartition(t, km.Labels, truth) {
			t.Fatalf("seed %d: partition differs from the blobs", seed)
		}
		if got := km.Assign(x); !slices.Equal(got, km.Labels) {
			t.Fatalf("seed %d: Assign(x) differs from Labels", seed)
		}
		if got := km.Assign(km.Centroids); !slices.Equal(got, []int{0, 1, 2, 3, 4, 5}) {
			t.Fatalf("seed %d: Assign(centroids) = %v", seed, got)
		}
		var inertia float64
		for i, row := range x {
			inertia += float64(sqDist(row, km.Centroids[km.Labels[i]]))
		}
		if math.Abs(inertia-km.Inertia) > 1e-9*inertia {
			t.Fatalf("seed %d: Inertia %v, recomputed %v", seed, km.Inertia, inertia)
		}
	}
}

func TestFitKMeansDeterministicAcrossWorkers(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := uniformRows(rng, 1000, 6)
	fit := func(workers int) *KMeans {
		t.Helper()
		km, err := FitKMeans(context.Background(), x, KMeansOptions{K: 12, Restarts: 2, MaxIter: 30, Seed: 42, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		return km
	}
	a, b, c := fit(1), fit(4), fit(3)
	for _, o := range []*KMeans{b, c} {
		if a.Inertia != o.Inertia || !slices.Equal(a.Labels, o.Labels) || a.Iterations != o.Iterations {
			t.Fatalf("results differ across workers: inertia %v vs %v", a.Inertia, o.Inertia)
		}
		for i := range a.Centroids {
			if !slices.Equal(a.Centroids[i], o.Centroids[i]) {
				t.Fatalf("centroid %d differs across workers", i)
			}
		}
	}
	other, err := FitKMeans(context.Background(), x, KMeansOptions{K: 12, Restarts: 2, MaxIter: 30, Seed: 43})
	if err != nil {
		t.Fatal(err)
	}
	if other.Inertia == a.Inertia {
		t.Errorf("seeds 42 and 43 gave the same inertia %v; is the seed used?", a.Inertia)
	}
}

func TestFitKMeansMoreRestartsNeverWorse(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	x := uniformRows(rng, 600, 4)
	prev := math.Inf(1)
	for _, r := range []int{1, 2, 3, 5, 8} {
		km, err := FitKMeans(context.Background(), x, KMeansOptions{K: 15, Restarts: r, MaxIter: 20, Seed: 11})
		if err != nil {
			t.Fatal(err)
		}
		if km.Inertia > prev {
			t.Fatalf("Restarts=%d: inertia %v > %v with fewer restarts", r, km.Inertia, prev)
		}
		prev = km.Inertia
	}
}

func TestFitKMeansKEqualsDistinct(t *testing.T) {
	// Three distinct points, repeated: K = 3 must give every point its own
	// centroid with zero inertia; K = 4 is an error.
	x := [][]float32{{0, 0}, {1, 0}, {0, 1}, {0, 0}, {1, 0}, {0, 1}, {0, 0}}
	km, err := FitKMeans(context.Background(), x, KMeansOptions{K: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if km.Inertia != 0 || !samePartition(t, km.Labels, []int{0, 1, 2, 0, 1, 2, 0}) {
		t.Fatalf("K = distinct points: inertia %v, labels %v", km.Inertia, km.Labels)
	}
	if _, err := FitKMeans(context.Background(), x, KMeansOptions{K: 4, Seed: 1}); !errors.Is(err, ErrClusters) {
		t.Fatalf("K > distinct points: error %v, want ErrClusters", err)
	}
}

func TestUpdateReseedsEmptyCluster(t *testing.T) {
	// Cluster 1 is empty; the farthest point (index 3, in a cluster with
	// more than one point) must move to it.
	x := [][]float32{{0}, {1}, {2}, {10}}
	cent := [][]float32{{1}, {100}}
	labels := []int{0, 0, 0, 0}
	dist := []float32{1, 0, 1, 81}
	update(x, 1, cent, labels, dist, make([]float64, 2), make([]int, 2))
	if !slices.Equal(labels, []int{0, 0, 0, 1}) || cent[0][0] != 1 || cent[1][0] != 10 {
		t.Fatalf("labels %v centroids %v", labels, cent)
	}
}

func TestFitKMeansErrors(t *testing.T) {
	good := [][]float32{{1, 2}, {3, 4}, {5, 6}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		x    [][]float32
		opts KMeansOptions
		is   error
	}{
		{"K 0", context.Background(), good, KMeansOptions{K: 0}, ErrClusters},
		{"K negative", context.Background(), good, KMeansOptions{K: -1}, ErrClusters},
		{"K > n", context.Background(), good, KMeansOptions{K: 4}, ErrClusters},
		{"no rows", context.Background(), nil, KMeansOptions{K: 1}, ErrEmpty},
		{"ragged", context.Background(), [][]float32{{1, 2}, {3}}, KMeansOptions{K: 1}, ErrRagged},
		{"NaN", context.Background(), [][]float32{{1, 2}, {3, float32(math.NaN())}}, KMeansOptions{K: 1}, ErrNonFinite},
		{"Inf", context.Background(), [][]float32{{float32(math.Inf(1)), 2}}, KMeansOptions{K: 1}, ErrNonFinite},
		{"negative MaxIter", context.Background(), good, KMeansOptions{K: 1, MaxIter: -1}, nil},
		{"cancelled", cancelled, good, KMeansOptions{K: 2}, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FitKMeans(tc.ctx, tc.x, tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v does not wrap %v", err, tc.is)
			}
		})
	}
}

func BenchmarkFitKMeans(b *testing.B) {
	const n, d, k = 20000, 64, 100
	rng := rand.New(rand.NewPCG(1, 1))
	centres := make([][]float64, k)
	for c := range centres {
		centres[c] = make([]float64, d)
		for j := range centres[c] {
			centres[c][j] = 4 * rng.NormFloat64()
		}
	}
	x, _ := gaussianBlobs(b, rng, centres, n/k, 1)
	b.ResetTimer()
	iters := 0
	for b.Loop() {
		km, err := FitKMeans(context.Background(), x, KMeansOptions{K: k, Restarts: 1, MaxIter: 20, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		iters += km.Iterations + 1 // + the final assignment pass
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(n*b.N)/s, "points/s")
	b.ReportMetric(float64(n)*float64(iters)/s, "point-iters/s")
}

func BenchmarkFitPCA(b *testing.B) {
	const n, d = 10000, 768
	rng := rand.New(rand.NewPCG(2, 2))
	x := make([][]float32, n)
	for i := range x {
		x[i] = make([]float32, d)
		for j := range x[i] {
			x[i][j] = float32(rng.NormFloat64() / float64(1+j%50))
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := FitPCA(x, 0.9); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}

func TestSqDist(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	for _, d := range []int{1, 3, 7, 8, 15, 16, 17, 24, 31, 64, 100, 768} {
		a, b := uniformRows(rng, 1, d)[0], uniformRows(rng, 1, d)[0]
		var want float64
		for j := range a {
			diff := float64(a[j]) - float64(b[j])
			want += diff * diff
		}
		for name, f := range map[string]func(a, b []float32) float32{"sqDist": sqDist, "sqDistScalar": sqDistScalar} {
			if got := float64(f(a, b)); math.Abs(got-want) > 1e-5*want+1e-7 {
				t.Errorf("%s, d=%d: %v, want %v", name, d, got, want)
			}
		}
	}
}

func BenchmarkSqDist64(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := uniformRows(rng, 2, 64)
	for name, f := range map[string]func(a, b []float32) float32{"sqDist": sqDist, "scalar": sqDistScalar} {
		b.Run(name, func(b *testing.B) {
			var s float32
			for b.Loop() {
				s += f(x[0], x[1])
			}
			_ = s
		})
	}
}
