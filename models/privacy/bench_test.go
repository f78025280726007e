package privacy

import "testing"

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
