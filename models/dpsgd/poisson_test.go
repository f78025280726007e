package dpsgd

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/lm"
)

// binomialZ is the z-score of k successes in N trials at rate q.
func binomialZ(k, N int, q float64) float64 {
	return (float64(k) - float64(N)*q) / math.Sqrt(float64(N)*q*(1-q))
}

// TestPoissonBatchRate: the empirical inclusion rate matches q (|z| < 4.5),
// and the same test rejects a rate 10% off.
func TestPoissonBatchRate(t *testing.T) {
	cases := []struct {
		n, trials int
		q         float64
	}{
		{2000, 50, 0.05},
		{500, 100, 0.3},
		{1000, 20, 0.9},
	}
	for _, tc := range cases {
		rng := rand.New(rand.NewPCG(uint64(tc.n), 99))
		k := 0
		perRecord := make([]int, tc.n)
		for range tc.trials {
			idx := PoissonBatch(tc.n, tc.q, rng)
			for i, j := range idx {
				if j < 0 || j >= tc.n || (i > 0 && idx[i-1] >= j) {
					t.Fatalf("q=%g: indices not ascending/unique/in range: %v", tc.q, idx)
				}
				perRecord[j]++
			}
			k += len(idx)
		}
		N := tc.n * tc.trials
		z := binomialZ(k, N, tc.q)
		if math.Abs(z) > 4.5 {
			t.Errorf("q=%g: %d of %d included (rate %.5f), z=%.2f", tc.q, k, N, float64(k)/float64(N), z)
		}
		// Power: the same count is rejected for rates 10% off.
		for _, f := range []float64{0.9, 1.1} {
			if qq := tc.q * f; qq < 1 && math.Abs(binomialZ(k, N, qq)) <= 4.5 {
				t.Errorf("q=%g: test cannot tell q from %g (z=%.2f)", tc.q, qq, binomialZ(k, N, qq))
			}
		}
		// Independence across records: first and last record both sampled.
		if perRecord[0] == 0 && perRecord[tc.n-1] == 0 && tc.q > 0.1 {
			t.Errorf("q=%g: edge records never sampled", tc.q)
		}
		t.Logf("q=%g: rate %.5f (z=%.2f)", tc.q, float64(k)/float64(N), z)
	}
	if got := PoissonBatch(5, 1, nil); len(got) != 5 {
		t.Errorf("q=1: %v", got)
	}
	if got := PoissonBatch(5, 0, nil); len(got) != 0 {
		t.Errorf("q=0: %v", got)
	}
}

func TestDefaultBuckets(t *testing.T) {
	cases := []struct {
		n    int
		q    float64
		want []int
	}{
		{10000, 32.0 / 10000, []int{16, 32, 64}}, // E=32, sd≈5.65: [9.4, 54.6]
		{64, 0.25, []int{4, 8, 16, 32}},          // E=16, sd≈3.46: [2.1, 29.9]
		{100, 0.01, []int{1, 2, 4, 8}},           // E=1: [1, 5]
	}
	for _, tc := range cases {
		if got := DefaultBuckets(tc.n, tc.q); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("DefaultBuckets(%d, %g) = %v, want %v", tc.n, tc.q, got, tc.want)
		}
	}
}

func TestPlanChunks(t *testing.T) {
	cases := []struct {
		k       int
		buckets []int
		want    []Chunk
	}{
		{0, []int{8, 4}, []Chunk{{0, 0, 4}}},
		{3, []int{4, 8}, []Chunk{{0, 3, 4}}},
		{4, []int{4, 8}, []Chunk{{0, 4, 4}}},
		{5, []int{4, 8}, []Chunk{{0, 5, 8}}},
		{19, []int{4, 8}, []Chunk{{0, 8, 8}, {8, 8, 8}, {16, 3, 4}}},
		{16, []int{4, 8}, []Chunk{{0, 8, 8}, {8, 8, 8}}},
		{3, []int{1}, []Chunk{{0, 1, 1}, {1, 1, 1}, {2, 1, 1}}},
	}
	for _, tc := range cases {
		got, err := PlanChunks(tc.k, tc.buckets)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("PlanChunks(%d, %v) = %v, want %v", tc.k, tc.buckets, got, tc.want)
		}
		rows := 0
		for _, c := range got {
			rows += c.Rows
		}
		if rows != tc.k {
			t.Errorf("PlanChunks(%d): %d rows planned", tc.k, rows)
		}
	}
	for _, bad := range [][]int{nil, {0}, {4, -1}} {
		if _, err := PlanChunks(3, bad); err == nil {
			t.Errorf("PlanChunks(3, %v): no error", bad)
		}
	}
}

// TestPaddingRowsContributeNothing: the same three sequences packed into 3
// rows and into 8 rows (5 empty) give the same clipped sums and norms.
func TestPaddingRowsContributeNothing(t *testing.T) {
	requireBackend(t)
	m := tinyModel(t, true)
	seqs := [][]int32{{5, 9, 13, 2, 7, 5, 31}, {3, 3, 8}, {39, 1, 22, 22, 17, 4, 6, 10, 12}}
	paths := trainablePathsOf(m, lm.TrainAll)
	var outs []dutOut
	for _, B := range []int{3, 8} {
		in, tg, mk, err := lm.PackBatch(seqs, B, tT, m.Config())
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, runClipped(t, m, paths, Options{Clip: 0.5, Trainable: lm.TrainAll}, in, tg, mk))
	}
	a, b := outs[0], outs[1]
	for i := range 3 {
		if math.Abs(a.norms[i]-b.norms[i]) > 1e-6*a.norms[i] {
			t.Fatalf("norm[%d]: %g unpadded vs %g padded", i, a.norms[i], b.norms[i])
		}
	}
	for i := 3; i < 8; i++ {
		if b.norms[i] != 0 || b.factors[i] != 1 {
			t.Fatalf("padding row %d: norm %g factor %g", i, b.norms[i], b.factors[i])
		}
	}
	maxDiff, exact := 0.0, true
	for i, p := range paths {
		scale := 0.0
		for _, v := range a.grads[i] {
			scale = math.Max(scale, math.Abs(v))
		}
		for j, v := range a.grads[i] {
			d := math.Abs(v - b.grads[i][j])
			if d != 0 {
				exact = false
			}
			if d > 1e-6*math.Max(scale, 1e-6) {
				t.Fatalf("%s[%d]: %g unpadded vs %g padded", p, j, v, b.grads[i][j])
			}
			maxDiff = math.Max(maxDiff, d)
		}
	}
	t.Logf("padded vs unpadded clipped sums: max abs diff %.3g (bit-identical: %v)", maxDiff, exact)
}
