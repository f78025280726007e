package dpsgd

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// PoissonBatch returns the indices (ascending) of the records in [0, n)
// included in one Poisson-sampled batch: each record independently with
// probability q. This is the sampling the privacy accountant assumes; the
// batch size is random (Binomial(n, q)) and may be 0. The caller supplies
// the RNG; for a private run seed it from crypto/rand and never log it.
func PoissonBatch(n int, q float64, rng *rand.Rand) []int {
	var out []int
	if n <= 0 || q <= 0 {
		return out
	}
	if q >= 1 {
		out = make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	for i := range n {
		if rng.Float64() < q {
			out = append(out, i)
		}
	}
	return out
}

// DefaultBuckets returns the padded batch sizes used for Poisson batches of
// n records at rate q: the powers of two from the one at or above
// max(1, E-4sd) up to the one at or above E+4sd, where E = q*n and
// sd = sqrt(n*q*(1-q)). Batches larger than the last bucket are split
// (see PlanChunks).
func DefaultBuckets(n int, q float64) []int {
	return bucketsFor(q*float64(n), math.Sqrt(float64(n)*q*(1-q)))
}

func bucketsFor(e, sd float64) []int {
	lo := math.Max(1, e-4*sd)
	hi := math.Max(1, e+4*sd)
	var out []int
	for p := nextPow2(lo); ; p *= 2 {
		out = append(out, p)
		if float64(p) >= hi {
			break
		}
	}
	return out
}

func nextPow2(x float64) int {
	p := 1
	for float64(p) < x {
		p *= 2
	}
	return p
}

// Chunk is one call of the DP graph: Rows real records padded to Padded rows.
type Chunk struct {
	Start, Rows, Padded int
}

// PlanChunks splits a batch of k records into graph calls over the sorted
// bucket sizes: if k fits the largest bucket there is one chunk padded to
// the smallest bucket >= k (k = 0 gives one all-padding chunk of the
// smallest bucket, so an empty Poisson batch still takes a noised step);
// otherwise full chunks of the largest bucket followed by one chunk for the
// remainder. Records are never dropped or truncated.
func PlanChunks(k int, buckets []int) ([]Chunk, error) {
	if err := checkBuckets(buckets); err != nil {
		return nil, err
	}
	bs := append([]int(nil), buckets...)
	sort.Ints(bs)
	largest := bs[len(bs)-1]
	var out []Chunk
	start := 0
	for k-start > largest {
		out = append(out, Chunk{Start: start, Rows: largest, Padded: largest})
		start += largest
	}
	rest := k - start
	for _, b := range bs {
		if b >= rest {
			out = append(out, Chunk{Start: start, Rows: rest, Padded: b})
			break
		}
	}
	return out, nil
}

func checkBuckets(buckets []int) error {
	if len(buckets) == 0 {
		return errors.New("dpsgd: no bucket sizes")
	}
	for _, b := range buckets {
		if b < 1 {
			return fmt.Errorf("dpsgd: bucket size %d < 1", b)
		}
	}
	return nil
}
