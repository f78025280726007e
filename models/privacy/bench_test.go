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
	b.Run("prv", func(b *testing.B) {
		for range b.N {
			if _, err := PRVEpsilon(0.01, 1.0, 10_000, 1e-6, PRVOptions{HistogramSigma: 10}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// millionStepSettings are the million-step benchmarks' settings: small to
// large sampling rates, with the noise raised at q 0.5 so that epsilon
// stays finite-looking (~430).
var millionStepSettings = []struct{ q, sigma float64 }{{1e-4, 1.2}, {1e-3, 1.2}, {0.01, 1.2}, {0.5, 20}}

// BenchmarkPLDMillionSteps: the PLD epsilon of 1,000,000 DP-SGD steps at
// delta 1e-6 (issue 15: under 2 seconds).
func BenchmarkPLDMillionSteps(b *testing.B) {
	for _, s := range millionStepSettings {
		b.Run(fmt.Sprintf("q=%g", s.q), func(b *testing.B) {
			for range b.N {
				if _, err := PLDEpsilon(s.q, s.sigma, 1_000_000, 1e-6, PLDOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPRVMillionSteps: the same with the PRV accountant (bracket
// half-width 0.01, or what a 2^22-point grid allows).
func BenchmarkPRVMillionSteps(b *testing.B) {
	for _, s := range millionStepSettings {
		b.Run(fmt.Sprintf("q=%g", s.q), func(b *testing.B) {
			for range b.N {
				if _, err := PRVEpsilon(s.q, s.sigma, 1_000_000, 1e-6, PRVOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNoiseForDemoWindow: calibrating the demo's window (1,000
// records: q 0.032, 32 steps, histogram sigma 5, epsilon 4, delta 1e-6)
// with each accountant at the dp processor's tolerance (1e-3).
func BenchmarkNoiseForDemoWindow(b *testing.B) {
	const q, steps, hist, eps, delta, tol = 0.032, 32, 5.0, 4.0, 1e-6, 1e-3
	b.Run("rdp", func(b *testing.B) {
		for range b.N {
			if _, err := NoiseForEpsilon(eps, delta, q, steps, Options{HistogramSigma: hist, RelTol: tol}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pld", func(b *testing.B) {
		for range b.N {
			if _, err := PLDNoiseForEpsilon(eps, delta, q, steps, tol, PLDOptions{HistogramSigma: hist}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prv", func(b *testing.B) {
		for range b.N {
			if _, err := PRVNoiseForEpsilon(eps, delta, q, steps, tol, PRVOptions{HistogramSigma: hist}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
