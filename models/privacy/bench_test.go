package privacy

import (
	"fmt"
	"testing"
)

// BenchmarkEpsilon10kSteps: epsilon of 10,000 DP-SGD steps (q 0.01, sigma 1,
// delta 1e-6) with each accountant; docs/BENCHMARKS.md quotes ns/op.
func BenchmarkEpsilon10kSteps(b *testing.B) {
	b.Run("rdp", func(b *testing.B) {
		for range b.N {
			a := NewAccountant(nil, Improved)
			a.ComposeSGD(0.01, 1.0, 10_000)
			a.ComposeGaussian(10)
			if eps, _ := a.Epsilon(1e-6); eps <= 0 {
				b.Fatal(eps)
			}
		}
	})
	b.Run("pld", func(b *testing.B) {
		for range b.N {
			if _, err := PLDEpsilon(0.01, 1.0, 10_000, 1e-6, PLDOptions{HistogramSigma: 10}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPLDMillionSteps: the PLD epsilon of 1,000,000 DP-SGD steps at
// delta 1e-6 (issue 15: under 2 seconds), at a small and a moderate
// sampling rate with sigma 1.2.
func BenchmarkPLDMillionSteps(b *testing.B) {
	for _, q := range []float64{1e-4, 1e-3} {
		b.Run(fmt.Sprintf("q=%g", q), func(b *testing.B) {
			for range b.N {
				if _, err := PLDEpsilon(q, 1.2, 1_000_000, 1e-6, PLDOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
