package cluster

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Sentinel errors; the errors returned by this package wrap them with the
// offending row or value.
var (
	ErrEmpty     = errors.New("cluster: no rows or zero-width rows")
	ErrRagged    = errors.New("cluster: rows of different lengths")
	ErrNonFinite = errors.New("cluster: NaN or Inf in input")
	ErrClusters  = errors.New("cluster: invalid number of clusters")
)

// checkRows validates x and returns its width.
func checkRows(x [][]float32) (int, error) {
	if len(x) == 0 {
		return 0, fmt.Errorf("%w: 0 rows", ErrEmpty)
	}
	d := len(x[0])
	if d == 0 {
		return 0, fmt.Errorf("%w: row 0 has length 0", ErrEmpty)
	}
	for i, row := range x {
		if len(row) != d {
			return 0, fmt.Errorf("%w: row %d has length %d, row 0 has %d", ErrRagged, i, len(row), d)
		}
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return 0, fmt.Errorf("%w: row %d column %d is %v", ErrNonFinite, i, j, v)
			}
		}
	}
	return d, nil
}

// Normalize L2-normalises each row in place (zero rows stay zero). The norm
// is accumulated in float64 so that long rows of small values do not lose
// precision.
func Normalize(x [][]float32) {
	for _, row := range x {
		var s float64
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		if s == 0 {
			continue
		}
		inv := 1 / math.Sqrt(s)
		for j, v := range row {
			row[j] = float32(float64(v) * inv)
		}
	}
}

// workerCount resolves a Workers option (0 or less: GOMAXPROCS) and never
// returns more workers than there are items.
func workerCount(workers, n int) int {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if workers > n {
		workers = n
	}
	if workers < 1 {
		workers = 1
	}
	return workers
}

// parallelRange splits [0,n) into one contiguous chunk per worker and calls
// fn on each chunk concurrently. Callers only write per-item results (or
// per-chunk results that they combine in chunk order), which is what keeps
// the outcome independent of the number of workers.
func parallelRange(n, workers int, fn func(lo, hi int)) {
	workers = workerCount(workers, n)
	if workers == 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		if lo == hi {
			continue
		}
		wg.Go(func() { fn(lo, hi) })
	}
	wg.Wait()
}

// sqDistScalar is the squared Euclidean distance between a and b (len(b)
// >= len(a)), in portable Go; sqDist uses it where AVX2 is unavailable and
// for short rows. Four accumulators let the CPU overlap the adds; the order is
// fixed, so results are reproducible.
func sqDistScalar(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		d0 := a[i] - b[i]
		d1 := a[i+1] - b[i+1]
		d2 := a[i+2] - b[i+2]
		d3 := a[i+3] - b[i+3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(a); i++ {
		d := a[i] - b[i]
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}
