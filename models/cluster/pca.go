package cluster

import (
	"fmt"
	"math"
	"sort"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// PCA is a fitted principal component analysis.
type PCA struct {
	Mean       []float64   // d
	Components [][]float64 // k x d, orthonormal rows, by decreasing variance
	Variance   []float64   // variance along each kept component
	Share      float64     // share of total variance kept (>= requested)
}

const (
	// pcaGroups is the number of row groups whose partial sums are built
	// concurrently. It is fixed (not GOMAXPROCS) so that the summation
	// order, hence the result, is the same on every machine.
	pcaGroups = 16
	// pcaBlock rows are centred into a float64 buffer at a time and added
	// to the covariance with one rank-k update (a block of 768-wide rows
	// stays in cache while the update sweeps it).
	pcaBlock = 128
)

// FitPCA keeps the fewest leading components whose variance reaches share
// (0 < share <= 1) of the total. The covariance is built in float64 (two
// passes: mean, then centred rank-k updates), divided by n-1 (n when n is
// 1) like sklearn's explained_variance_, and eigen-decomposed with gonum's
// SymEigen. Each component's sign is fixed so that its largest-magnitude
// entry is positive, which makes the output independent of the eigen
// solver's sign convention. If all rows are equal (zero total variance)
// one component is kept and Share is 1.
func FitPCA(x [][]float32, share float64) (*PCA, error) {
	if !(share > 0 && share <= 1) {
		return nil, fmt.Errorf("cluster: FitPCA: share %v not in (0,1]", share)
	}
	d, err := checkRows(x)
	if err != nil {
		return nil, fmt.Errorf("cluster: FitPCA: %w", err)
	}
	n := len(x)
	groups := min(pcaGroups, n)
	bounds := func(g int) (int, int) { return g * n / groups, (g + 1) * n / groups }

	// Pass 1: the mean, from per-group sums added in group order.
	sums := make([][]float64, groups)
	runGroups(groups, func(g int) {
		s := make([]float64, d)
		lo, hi := bounds(g)
		for _, row := range x[lo:hi] {
			for j, v := range row {
				s[j] += float64(v)
			}
		}
		sums[g] = s
	})
	mean := make([]float64, d)
	for _, s := range sums {
		floats.Add(mean, s)
	}
	floats.Scale(1/float64(n), mean)

	// Pass 2: upper triangle of the centred scatter matrix per group.
	parts := make([][]float64, groups)
	runGroups(groups, func(g int) {
		c := make([]float64, d*d)
		buf := make([]float64, pcaBlock*d)
		lo, hi := bounds(g)
		for b := lo; b < hi; b += pcaBlock {
			m := min(pcaBlock, hi-b)
			for r := range m {
				dst := buf[r*d : (r+1)*d]
				for j, v := range x[b+r] {
					dst[j] = float64(v) - mean[j]
				}
			}
			a := blas64.General{Rows: m, Cols: d, Stride: d, Data: buf[:m*d]}
			cs := blas64.Symmetric{Uplo: blas.Upper, N: d, Stride: d, Data: c}
			blas64.Syrk(blas.Trans, 1, a, 1, cs)
		}
		parts[g] = c
	})
	cov := parts[0]
	for _, p := range parts[1:] {
		floats.Add(cov, p)
	}
	div := float64(n - 1)
	if n == 1 {
		div = 1
	}
	floats.Scale(1/div, cov)

	var eig mat.EigenSym
	if !eig.Factorize(mat.NewSymDense(d, cov), true) {
		return nil, fmt.Errorf("cluster: FitPCA: eigen-decomposition of the %dx%d covariance did not converge", d, d)
	}
	vals := eig.Values(nil) // ascending
	var vecs mat.Dense
	eig.VectorsTo(&vecs)

	order := make([]int, d)
	for i := range order {
		order[i] = i
	}
	// Decreasing variance; stable so equal eigenvalues keep solver order.
	sort.SliceStable(order, func(a, b int) bool { return vals[order[a]] > vals[order[b]] })
	var total float64
	for _, v := range vals {
		total += max(v, 0) // round-off can make null directions slightly negative
	}

	p := &PCA{Mean: mean}
	var kept float64
	for _, idx := range order {
		v := max(vals[idx], 0)
		comp := make([]float64, d)
		mat.Col(comp, idx, &vecs)
		flipSign(comp)
		p.Components = append(p.Components, comp)
		p.Variance = append(p.Variance, v)
		kept += v
		// A relative slack of 1e-12 so that share = 1 is reached despite
		// the round-off in summing the eigenvalues.
		if total == 0 || kept >= share*total*(1-1e-12) {
			break
		}
	}
	if total == 0 {
		p.Share = 1
	} else {
		p.Share = min(kept/total, 1)
	}
	return p, nil
}

// runGroups calls fn(g) for g in [0,groups) with at most GOMAXPROCS
// running at once.
func runGroups(groups int, fn func(g int)) {
	workers := workerCount(0, groups)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for g := range next {
				fn(g)
			}
		})
	}
	for g := range groups {
		next <- g
	}
	close(next)
	wg.Wait()
}

// flipSign makes the largest-magnitude entry of v positive (first one on
// ties).
func flipSign(v []float64) {
	best := 0
	for i, x := range v {
		if math.Abs(x) > math.Abs(v[best]) {
			best = i
		}
	}
	if v[best] < 0 {
		floats.Scale(-1, v)
	}
}

// Dims returns the number of kept components (the width of Transform's
// output).
func (p *PCA) Dims() int { return len(p.Components) }

// Transform returns the centred projection of each row onto the kept
// components (k-dim), computed in float64 and stored as float32. It runs in
// parallel over rows and does not modify x. It panics if a row's length
// differs from len(p.Mean), which is a programming error.
func (p *PCA) Transform(x [][]float32) [][]float32 {
	d, k := len(p.Mean), len(p.Components)
	for i, row := range x {
		if len(row) != d {
			panic(fmt.Sprintf("cluster: PCA.Transform: row %d has length %d, want %d", i, len(row), d))
		}
	}
	out := make([][]float32, len(x))
	flat := make([]float32, len(x)*k)
	parallelRange(len(x), 0, func(lo, hi int) {
		buf := make([]float64, d)
		for i := lo; i < hi; i++ {
			for j, v := range x[i] {
				buf[j] = float64(v) - p.Mean[j]
			}
			o := flat[i*k : (i+1)*k : (i+1)*k]
			for c, comp := range p.Components {
				o[c] = float32(floats.Dot(buf, comp))
			}
			out[i] = o
		}
	})
	return out
}
