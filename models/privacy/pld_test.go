package privacy

import (
	"errors"
	"math"
	"testing"

	"github.com/dpinstruct/dpinstruct/internal/racebuild"
)

func pldEps(t *testing.T, q, sigma float64, steps int, delta float64, opts PLDOptions) float64 {
	t.Helper()
	e, err := PLDEpsilon(q, sigma, steps, delta, opts)
	if err != nil {
		t.Fatalf("PLDEpsilon(q=%v, sigma=%v, steps=%d, delta=%v, %+v): %v", q, sigma, steps, delta, opts, err)
	}
	if math.IsNaN(e) || e < 0 {
		t.Fatalf("PLDEpsilon(q=%v, sigma=%v, steps=%d): bad eps %v", q, sigma, steps, e)
	}
	return e
}

// TestPLDPublishedPRV compares with the PRV accountant values of method.md
// (delta 1e-6). Those are the PRV accountant's upper bounds with
// eps_error 0.01, i.e. its estimate plus 0.01: the true epsilon lies in
// [published - 0.02, published], and the PRV estimate is published - 0.01.
// The PLD must agree with that estimate within 1% and stay inside the
// bracket.
func TestPLDPublishedPRV(t *testing.T) {
	tests := []struct {
		name     string
		q, sigma float64
		steps    int
		want     float64
	}{
		{"sigma0.8_q0.001_T100", 0.001, 0.8, 100, 0.270403364},
		{"sigma1.5_q0.05_T1000", 0.05, 1.5, 1000, 6.209969247},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := pldEps(t, tc.q, tc.sigma, tc.steps, 1e-6, PLDOptions{})
			assertRel(t, tc.name, got, tc.want-0.01, 0.01)
			if got < tc.want-0.02 || got > tc.want {
				t.Errorf("%s: eps %v outside the PRV bracket [%v, %v]", tc.name, got, tc.want-0.02, tc.want)
			}
		})
	}
}

// TestPLDIntervalConverges: the connect-the-dots PLD is an upper bound that
// tightens as the interval shrinks, and at the default interval it is
// within 1e-4 (relative) of the result at half of it, also for long runs
// (14,063 steps: Abadi et al.'s MNIST setting), where rounding each loss
// up to the grid used to drift by steps*interval.
func TestPLDIntervalConverges(t *testing.T) {
	tests := []struct {
		q, sigma float64
		steps    int
		delta    float64
	}{
		{0.001, 0.8, 100, 1e-6},
		{256.0 / 60000, 1.1, 14063, 1e-5},
		{0.5, 5, 1000, 1e-5},
		{0.02, 0.8, 439, 5e-7},
	}
	for _, tc := range tests {
		coarse := pldEps(t, tc.q, tc.sigma, tc.steps, tc.delta, PLDOptions{Interval: 1e-3})
		def := pldEps(t, tc.q, tc.sigma, tc.steps, tc.delta, PLDOptions{})
		fine := pldEps(t, tc.q, tc.sigma, tc.steps, tc.delta, PLDOptions{Interval: DefaultPLDInterval / 2})
		if !(coarse >= def && def >= fine) {
			t.Errorf("%+v: not tightening: %v (1e-3), %v (default), %v (half)", tc, coarse, def, fine)
		}
		if rel := (def - fine) / fine; rel > 1e-4 {
			t.Errorf("%+v: default interval %v, half %v: %.2g relative", tc, def, fine, rel)
		}
	}
}

// TestPLDBelowRDP checks that the PLD epsilon does not exceed the RDP
// epsilon of the same composition.
func TestPLDBelowRDP(t *testing.T) {
	tests := []struct {
		q, sigma, hist float64
		steps          int
		delta          float64
	}{
		{0.01, 1.0, 0, 200, 1e-5},
		{0.04, 1.5, 0, 500, 1e-5},
		{0.0228, 0.8, 10, 439, 5e-7},
		{0.1, 2.0, 0, 10, 1e-6},
		{1, 3.0, 0, 1, 1e-5},
	}
	// And a grid over sampling rates 1e-4 to 0.5 and 1 to 1,000,000 steps.
	for _, q := range []float64{1e-4, 1e-3, 0.01, 0.1, 0.5} {
		for _, steps := range []int{1, 100, 10_000, 1_000_000} {
			if q*float64(steps) > 2_000 {
				continue // epsilon in the hundreds: nothing to compare
			}
			tests = append(tests, struct {
				q, sigma, hist float64
				steps          int
				delta          float64
			}{q, 1.2, 0, steps, 1e-6})
		}
	}
	for _, tc := range tests {
		var a Accountant
		a.ComposeSGD(tc.q, tc.sigma, tc.steps)
		if tc.hist > 0 {
			a.ComposeGaussian(tc.hist)
		}
		rdp, _ := a.Epsilon(tc.delta)
		pld := pldEps(t, tc.q, tc.sigma, tc.steps, tc.delta, PLDOptions{Interval: 1e-3, HistogramSigma: tc.hist})
		if !(pld <= rdp) {
			t.Errorf("%+v: PLD eps %v > RDP eps %v", tc, pld, rdp)
		}
	}
}

// TestPLDMonotone: over a grid of sampling rates (1e-4 to 0.5), step
// counts (1 to 100,000) and noise multipliers (0.8 to 4), epsilon grows
// with steps and with q and falls with sigma (strictly, wherever it is not
// zero).
func TestPLDMonotone(t *testing.T) {
	opts := PLDOptions{Interval: 1e-3}
	const delta = 1e-5
	qs := []float64{1e-4, 1e-3, 0.01, 0.1, 0.5}
	stepss := []int{1, 100, 10_000, 100_000}
	sigmas := []float64{0.8, 1.2, 2, 4}
	if testing.Short() || racebuild.Enabled {
		stepss = stepss[:3]
	}
	eps := make([][][]float64, len(qs))
	for i, q := range qs {
		eps[i] = make([][]float64, len(stepss))
		for j, steps := range stepss {
			eps[i][j] = make([]float64, len(sigmas))
			for k, sigma := range sigmas {
				eps[i][j][k] = pldEps(t, q, sigma, steps, delta, opts)
			}
		}
	}
	less := func(a, b float64) bool { return a < b || (a == 0 && b == 0) }
	for i, q := range qs {
		for j, steps := range stepss {
			for k, sigma := range sigmas {
				e := eps[i][j][k]
				if i > 0 && !less(eps[i-1][j][k], e) {
					t.Errorf("q %g -> %g (steps %d, sigma %g): eps %v -> %v", qs[i-1], q, steps, sigma, eps[i-1][j][k], e)
				}
				if j > 0 && !less(eps[i][j-1][k], e) {
					t.Errorf("steps %d -> %d (q %g, sigma %g): eps %v -> %v", stepss[j-1], steps, q, sigma, eps[i][j-1][k], e)
				}
				if k > 0 && !less(e, eps[i][j][k-1]) {
					t.Errorf("sigma %g -> %g (q %g, steps %d): eps %v -> %v", sigmas[k-1], sigma, q, steps, eps[i][j][k-1], e)
				}
			}
		}
	}
}

// TestPLDPureGaussian: q = 1, one step is the Gaussian mechanism; the PLD
// must match the exact GaussianEpsilon to 1e-3 and never be below it.
// With a histogram release of the same sigma it is the Gaussian with
// sigma/sqrt(2) (two compositions: bound 2*interval).
func TestPLDPureGaussian(t *testing.T) {
	tests := []struct {
		sigma, delta float64
		hist         bool
	}{
		{0.5, 1e-5, false},
		{1, 1e-6, false},
		{2, 1e-5, false},
		{5, 1e-6, false},
		{10, 5e-7, false},
		{2, 1e-5, true},
		{10, 5e-7, true},
	}
	for _, tc := range tests {
		opts, gs, tol := PLDOptions{}, tc.sigma, 1e-3
		if tc.hist {
			opts.HistogramSigma = tc.sigma
			gs, tol = tc.sigma/math.Sqrt2, 2e-3
		}
		got := pldEps(t, 1, tc.sigma, 1, tc.delta, opts)
		want, err := GaussianEpsilon(gs, tc.delta, 1)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-want) > tol || got < want-1e-9 {
			t.Errorf("%+v: PLD eps %.9g, exact %.9g (tol %g)", tc, got, want, tol)
		}
	}
}

func TestPLDInvalid(t *testing.T) {
	tests := []struct {
		q, sigma float64
		steps    int
		delta    float64
		opts     PLDOptions
	}{
		{0, 1, 1, 1e-5, PLDOptions{}},
		{1.5, 1, 1, 1e-5, PLDOptions{}},
		{0.1, 0, 1, 1e-5, PLDOptions{}},
		{0.1, 1, 0, 1e-5, PLDOptions{}},
		{0.1, 1, 1, 0, PLDOptions{}},
		{0.1, 1, 1, 1, PLDOptions{}},
		{0.1, 1, 1, 1e-5, PLDOptions{Interval: -1}},
		{0.1, 1, 1, 1e-5, PLDOptions{HistogramSigma: -1}},
	}
	for _, tc := range tests {
		if _, err := PLDEpsilon(tc.q, tc.sigma, tc.steps, tc.delta, tc.opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: err %v, want ErrInvalid", tc, err)
		}
	}
}

// TestPLDNoiseForEpsilon: the PLD-calibrated noise meets the target, a
// noise (1+tol) below it does not, and it is below the RDP-calibrated
// noise (the PLD bound is tighter), with and without a histogram release.
func TestPLDNoiseForEpsilon(t *testing.T) {
	tests := []struct {
		eps, delta, q, hist float64
		steps               int
	}{
		{8, 1e-5, 0.04, 0, 2250},
		{4, 1e-6, 0.032, 5, 32},
		{1, 1e-6, 0.02, 10, 100},
	}
	const tol = 1e-3
	for _, tc := range tests {
		opts := PLDOptions{HistogramSigma: tc.hist, Interval: 1e-3}
		sigma, err := PLDNoiseForEpsilon(tc.eps, tc.delta, tc.q, tc.steps, tol, opts)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if e := pldEps(t, tc.q, sigma, tc.steps, tc.delta, opts); e > tc.eps {
			t.Errorf("%+v: sigma %v gives eps %v above the target", tc, sigma, e)
		}
		if e := pldEps(t, tc.q, sigma/(1+2*tol), tc.steps, tc.delta, opts); e <= tc.eps {
			t.Errorf("%+v: sigma %v is not the smallest: %v also meets it (eps %v)", tc, sigma, sigma/(1+2*tol), e)
		}
		rdp, err := NoiseForEpsilon(tc.eps, tc.delta, tc.q, tc.steps, Options{HistogramSigma: tc.hist})
		if err != nil {
			t.Fatal(err)
		}
		if !(sigma < rdp) {
			t.Errorf("%+v: PLD noise %v not below RDP noise %v", tc, sigma, rdp)
		}
		t.Logf("%+v: noise %.4f under PLD, %.4f under RDP", tc, sigma, rdp)
	}
}

func TestPLDNoiseForEpsilonRefusesBadInput(t *testing.T) {
	tests := []struct {
		name          string
		eps, delta, q float64
		steps         int
		opts          PLDOptions
	}{
		{"zero epsilon", 0, 1e-6, 0.01, 10, PLDOptions{}},
		{"delta of one", 1, 1, 0.01, 10, PLDOptions{}},
		{"q above one", 1, 1e-6, 2, 10, PLDOptions{}},
		{"no steps", 1, 1e-6, 0.01, 0, PLDOptions{}},
		{"negative interval", 1, 1e-6, 0.01, 10, PLDOptions{Interval: -1}},
		{"histogram alone over the target", 0.1, 1e-6, 0.01, 10, PLDOptions{HistogramSigma: 1}},
	}
	for _, tc := range tests {
		if _, err := PLDNoiseForEpsilon(tc.eps, tc.delta, tc.q, tc.steps, 1e-3, tc.opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", tc.name, err)
		}
	}
}

// TestFFTLen: the smallest 2-3-5-smooth length gonum can factor.
func TestFFTLen(t *testing.T) {
	tests := []struct{ n, want int }{{1, 1}, {7, 8}, {11, 12}, {1000, 1000}, {1025, 1080}, {1 << 20, 1 << 20}, {(1 << 20) + 1, 1049760}}
	for _, tc := range tests {
		if got := fftLen(tc.n); got != tc.want {
			t.Errorf("fftLen(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}
