package dpsgd

import (
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestGaussianNoiseIsNormalAndFresh: the host-drawn noise has the asked
// std, normal tails (the share beyond 1, 2 and 3 sd within 5 binomial
// standard errors of the normal's), covers slices split across goroutines
// and chunks, and two draws differ (each is seeded afresh).
func TestGaussianNoiseIsNormalAndFresh(t *testing.T) {
	const std = 2.5
	parts := [][]float32{make([]float32, 3*noiseChunk+17), make([]float32, 5), make([]float32, noiseChunk)}
	if err := fillGaussian(parts, std, nil); err != nil {
		t.Fatal(err)
	}
	var n int
	var sum, sq float64
	beyond := make([]int, 3)
	for _, p := range parts {
		for _, v := range p {
			x := float64(v)
			n++
			sum += x
			sq += x * x
			for k := range beyond {
				if math.Abs(x) > float64(k+1)*std {
					beyond[k]++
				}
			}
		}
	}
	mean := sum / float64(n)
	sd := math.Sqrt(sq/float64(n) - mean*mean)
	if math.Abs(mean) > 5*std/math.Sqrt(float64(n)) {
		t.Errorf("mean %.4g over %d draws", mean, n)
	}
	if r := sd / std; math.Abs(r-1) > 5/math.Sqrt(2*float64(n)) {
		t.Errorf("sd %.4g, want %.4g", sd, std)
	}
	for k, c := range beyond {
		p := math.Erfc(float64(k+1) / math.Sqrt2) // two-sided tail of N(0,1)
		got := float64(c) / float64(n)
		if se := math.Sqrt(p * (1 - p) / float64(n)); math.Abs(got-p) > 5*se {
			t.Errorf("share beyond %d sd = %.5f, want %.5f ± %.5f", k+1, got, p, 5*se)
		}
	}
	again := [][]float32{make([]float32, len(parts[0]))}
	if err := fillGaussian(again, std, nil); err != nil {
		t.Fatal(err)
	}
	same := 0
	for i := range again[0] {
		if again[0][i] == parts[0][i] {
			same++
		}
	}
	if same > 10 {
		t.Errorf("two draws share %d of %d values: the generator was not reseeded", same, len(again[0]))
	}
}

// TestGaussianNoiseFromGivenSeeds: with a seed source (evaluations only)
// two draws from equal sources are identical, and a short source is an
// error, not a silently weaker seed.
func TestGaussianNoiseFromGivenSeeds(t *testing.T) {
	draw := func(seeds io.Reader) ([]float32, error) {
		t.Helper()
		d := [][]float32{make([]float32, 2*noiseChunk+3)}
		return d[0], fillGaussian(d, 1, seeds)
	}
	a, err := draw(rand.NewChaCha8([32]byte{1, 2}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := draw(rand.NewChaCha8([32]byte{1, 2}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Error("equal seed sources drew different noise")
	}
	if _, err := draw(strings.NewReader("short")); err == nil {
		t.Error("a seed source shorter than a seed was accepted")
	}
}
