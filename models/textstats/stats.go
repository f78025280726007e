package textstats

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
)

// Lengths summarises token counts per text.
type Lengths struct {
	N                             int // number of texts
	Mean, Std, Min, P50, P90, Max float64
	// Histogram[i] counts texts with length in [BucketEdges[i],
	// BucketEdges[i+1]); the last bucket also holds BucketEdges[buckets].
	Histogram   []int
	BucketEdges []float64 // len(Histogram)+1 equal-width edges from Min to Max
}

// words is the default tokenizer: whitespace-separated words.
func words(s string) []string { return strings.Fields(s) }

// LengthStats returns statistics of the token counts of texts, with tokens
// from tokenize (nil: whitespace-separated words). Std is the population
// standard deviation; percentiles interpolate linearly between order
// statistics (numpy's default). The histogram has max(buckets, 0) equal-
// width buckets from Min to Max (Min to Min+1 when all lengths are equal).
// With no texts everything is zero and the histogram is empty.
func LengthStats(texts []string, tokenize func(string) []string, buckets int) Lengths {
	if tokenize == nil {
		tokenize = words
	}
	var l Lengths
	l.N = len(texts)
	if l.N == 0 {
		return l
	}
	xs := make([]float64, len(texts))
	var sum float64
	for i, t := range texts {
		xs[i] = float64(len(tokenize(t)))
		sum += xs[i]
	}
	l.Mean = sum / float64(l.N)
	var ss float64
	for _, x := range xs {
		ss += (x - l.Mean) * (x - l.Mean)
	}
	l.Std = math.Sqrt(ss / float64(l.N))
	slices.Sort(xs)
	l.Min, l.Max = xs[0], xs[len(xs)-1]
	l.P50, l.P90 = quantile(xs, 0.5), quantile(xs, 0.9)
	if buckets <= 0 {
		return l
	}
	lo, hi := l.Min, l.Max
	if hi == lo {
		hi = lo + 1
	}
	width := (hi - lo) / float64(buckets)
	l.BucketEdges = make([]float64, buckets+1)
	for i := range buckets {
		l.BucketEdges[i] = lo + float64(i)*width
	}
	l.BucketEdges[buckets] = hi
	l.Histogram = make([]int, buckets)
	for _, x := range xs {
		i := min(int((x-lo)/width), buckets-1)
		// Rounding in the division may land a value on an edge in the
		// neighbouring bucket; the edges are the definition.
		for i < buckets-1 && x >= l.BucketEdges[i+1] {
			i++
		}
		for i > 0 && x < l.BucketEdges[i] {
			i--
		}
		l.Histogram[i]++
	}
	return l
}

// quantile of sorted xs at q in [0, 1], by linear interpolation.
func quantile(xs []float64, q float64) float64 {
	pos := q * float64(len(xs)-1)
	i := int(pos)
	if i >= len(xs)-1 {
		return xs[len(xs)-1]
	}
	f := pos - float64(i)
	return xs[i] + f*(xs[i+1]-xs[i])
}

// DistinctN returns, for n = 1..maxN, the number of distinct n-grams
// divided by the total number of n-grams over the corpus (Li et al. 2016),
// with tokens from tokenize (nil: whitespace-separated words). N-grams do
// not cross text boundaries; a ratio with no n-grams at all is 0. maxN < 1
// gives nil. Counting is exact (no hashing).
func DistinctN(texts []string, tokenize func(string) []string, maxN int) []float64 {
	if maxN < 1 {
		return nil
	}
	if tokenize == nil {
		tokenize = words
	}
	// Tokens become ids so that an n-gram key is 4n bytes whatever the
	// token lengths, and distinct tokens never collide.
	ids := make(map[string]uint32)
	seen := make([]map[string]struct{}, maxN)
	for n := range seen {
		seen[n] = make(map[string]struct{})
	}
	total := make([]int, maxN)
	var seq []uint32
	var key []byte
	for _, t := range texts {
		seq = seq[:0]
		for _, tok := range tokenize(t) {
			id, ok := ids[tok]
			if !ok {
				id = uint32(len(ids))
				ids[tok] = id
			}
			seq = append(seq, id)
		}
		for i := range seq {
			key = key[:0]
			for n := 1; n <= maxN && i+n <= len(seq); n++ {
				key = binary.LittleEndian.AppendUint32(key, seq[i+n-1])
				total[n-1]++
				if _, ok := seen[n-1][string(key)]; !ok {
					seen[n-1][string(key)] = struct{}{}
				}
			}
		}
	}
	out := make([]float64, maxN)
	for n := range out {
		if total[n] > 0 {
			out[n] = float64(len(seen[n])) / float64(total[n])
		}
	}
	return out
}
