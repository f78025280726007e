package privacy

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/dpinstruct/dpinstruct/internal/racebuild"
)

func prvEps(t *testing.T, q, sigma float64, steps int, delta float64, opts PRVOptions) PRVResult {
	t.Helper()
	r, err := PRVEpsilon(q, sigma, steps, delta, opts)
	if err != nil {
		t.Fatalf("PRVEpsilon(q=%v, sigma=%v, steps=%d, delta=%v, %+v): %v", q, sigma, steps, delta, opts, err)
	}
	if !(r.Lower <= r.Estimate && r.Estimate <= r.Upper) || math.IsNaN(r.Lower) {
		t.Fatalf("PRVEpsilon(q=%v, sigma=%v, steps=%d): bracket out of order %+v", q, sigma, steps, r)
	}
	return r
}

// accountantGrid is the grid of issue 15: sampling rates 1e-4 to 0.5 and 1
// to 1,000,000 steps, with the noise raised for large q so that epsilon
// stays in a range where it means something (it still reaches ~100).
func accountantGrid() []struct {
	q, sigma float64
	steps    int
} {
	var g []struct {
		q, sigma float64
		steps    int
	}
	for _, q := range []float64{1e-4, 1e-3, 0.01, 0.1, 0.5} {
		sigma := 1.2
		if q >= 0.1 {
			sigma = 8 * q / 0.1
		}
		for _, steps := range []int{1, 100, 10_000, 1_000_000} {
			g = append(g, struct {
				q, sigma float64
				steps    int
			}{q, sigma, steps})
		}
	}
	return g
}

// TestPRVAgreesWithPLD: on the whole grid the PRV estimate is within 1%
// of the PLD epsilon, and the PLD's upper bound lies inside the PRV's
// bracket (both accountants are checked against each other: a PLD above
// the PRV's upper bound would be loose, one below its lower bound wrong).
func TestPRVAgreesWithPLD(t *testing.T) {
	if testing.Short() || racebuild.Enabled {
		t.Skip("40 accountant runs of up to a million steps; make test runs it without -race")
	}
	for _, g := range accountantGrid() {
		t.Run(fmt.Sprintf("q=%g/sigma=%g/steps=%d", g.q, g.sigma, g.steps), func(t *testing.T) {
			const delta = 1e-6
			pld := pldEps(t, g.q, g.sigma, g.steps, delta, PLDOptions{})
			prv := prvEps(t, g.q, g.sigma, g.steps, delta, PRVOptions{})
			if pld == 0 && prv.Estimate == 0 {
				return
			}
			assertRel(t, "PRV estimate vs PLD", prv.Estimate, pld, 0.01)
			if pld < prv.Lower || pld > prv.Upper {
				t.Errorf("PLD %v outside the PRV bracket [%v, %v]", pld, prv.Lower, prv.Upper)
			}
			t.Logf("PLD %.6g, PRV %.6g in [%.6g, %.6g] (grid %.2g)", pld, prv.Estimate, prv.Lower, prv.Upper, prv.Interval)
		})
	}
}

// TestPRVPureGaussian: with q = 1 a composition of k Gaussian mechanisms
// of noise sigma is one Gaussian mechanism of noise sigma/sqrt(k), whose
// epsilon is known exactly (GaussianEpsilon): the PRV bracket must contain
// it and the estimate be within 1e-4 of it; the same with the histogram
// release composed in.
func TestPRVPureGaussian(t *testing.T) {
	tests := []struct {
		sigma       float64
		steps       int
		delta, hist float64
	}{
		{0.5, 1, 1e-5, 0},
		{3, 1, 1e-5, 0},
		{10, 100, 1e-6, 0},
		{50, 10_000, 1e-6, 0},
		{2, 1, 1e-5, 2},
		{10, 99, 5e-7, 1},
	}
	for _, tc := range tests {
		r := prvEps(t, 1, tc.sigma, tc.steps, tc.delta, PRVOptions{HistogramSigma: tc.hist})
		// 1/s^2 = k/sigma^2 (+ 1/hist^2)
		inv := float64(tc.steps) / (tc.sigma * tc.sigma)
		if tc.hist > 0 {
			inv += 1 / (tc.hist * tc.hist)
		}
		want, err := GaussianEpsilon(1/math.Sqrt(inv), tc.delta, 1)
		if err != nil {
			t.Fatal(err)
		}
		if want < r.Lower || want > r.Upper {
			t.Errorf("%+v: exact %v outside [%v, %v]", tc, want, r.Lower, r.Upper)
		}
		if math.Abs(r.Estimate-want) > 1e-4*max(1, want) {
			t.Errorf("%+v: estimate %v, exact %v", tc, r.Estimate, want)
		}
	}
}

// TestPRVPublished: method.md's PRV values are its upper bounds at
// eps_error 0.01 (estimate + 0.01); ours, with the same eps_error, must
// match the estimate to 1e-3 relative, and our upper bound may not be
// looser (it is tighter where one step needs a finer grid than the bound
// does, so its half-width comes out below 0.01).
func TestPRVPublished(t *testing.T) {
	tests := []struct {
		q, sigma float64
		steps    int
		upper    float64
	}{
		{0.001, 0.8, 100, 0.270403364},
		{0.05, 1.5, 1000, 6.209969247},
	}
	for _, tc := range tests {
		r := prvEps(t, tc.q, tc.sigma, tc.steps, 1e-6, PRVOptions{EpsError: 0.01})
		assertRel(t, "estimate", r.Estimate, tc.upper-0.01, 1e-3)
		if r.Upper > tc.upper*(1+1e-6) {
			t.Errorf("upper bound %v looser than the published %v", r.Upper, tc.upper)
		}
	}
}

// TestPRVBracketShrinks: a smaller EpsError gives a narrower bracket that
// still contains the estimate of the default one, and the reported
// half-width is what was asked for unless the grid cap binds.
func TestPRVBracketShrinks(t *testing.T) {
	def := prvEps(t, 256.0/60000, 1.1, 14063, 1e-5, PRVOptions{})
	fine := prvEps(t, 256.0/60000, 1.1, 14063, 1e-5, PRVOptions{EpsError: 0.002})
	if !(fine.Upper-fine.Lower < def.Upper-def.Lower) {
		t.Errorf("bracket did not shrink: %+v vs %+v", fine, def)
	}
	if def.Estimate < fine.Lower || def.Estimate > fine.Upper {
		t.Errorf("default estimate %v outside the fine bracket [%v, %v]", def.Estimate, fine.Lower, fine.Upper)
	}
	if math.Abs(fine.EpsError-0.002) > 1e-6 || math.Abs(def.EpsError-DefaultPRVEpsError) > 1e-6 {
		t.Errorf("half-widths %v and %v, asked 0.002 and %v", fine.EpsError, def.EpsError, DefaultPRVEpsError)
	}
	capped := prvEps(t, 256.0/60000, 1.1, 14063, 1e-5, PRVOptions{EpsError: 1e-4, MaxPoints: 1 << 14})
	if !(capped.EpsError > 1e-4) || capped.Estimate < def.Lower || capped.Estimate > def.Upper {
		t.Errorf("capped grid: %+v (default %+v)", capped, def)
	}
}

func TestPRVInvalid(t *testing.T) {
	tests := []struct {
		name     string
		q, sigma float64
		steps    int
		delta    float64
		opts     PRVOptions
	}{
		{"zero q", 0, 1, 1, 1e-5, PRVOptions{}},
		{"q above one", 1.5, 1, 1, 1e-5, PRVOptions{}},
		{"zero sigma", 0.1, 0, 1, 1e-5, PRVOptions{}},
		{"no steps", 0.1, 1, 0, 1e-5, PRVOptions{}},
		{"zero delta", 0.1, 1, 1, 0, PRVOptions{}},
		{"negative eps error", 0.1, 1, 1, 1e-5, PRVOptions{EpsError: -1}},
		{"delta error above delta", 0.1, 1, 1, 1e-5, PRVOptions{DeltaError: 1e-4}},
		{"tiny grid", 0.1, 1, 1, 1e-5, PRVOptions{MaxPoints: 10}},
		{"negative histogram", 0.1, 1, 1, 1e-5, PRVOptions{HistogramSigma: -1}},
	}
	for _, tc := range tests {
		if _, err := PRVEpsilon(tc.q, tc.sigma, tc.steps, tc.delta, tc.opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", tc.name, err)
		}
	}
}

// TestPRVNoiseForEpsilon: the PRV-calibrated noise meets the target by the
// PRV's upper bound, a noise (1+2 tol) below it does not, and it lies
// between the PLD's noise (a tighter single bound) and RDP's.
func TestPRVNoiseForEpsilon(t *testing.T) {
	tests := []struct {
		eps, delta, q, hist float64
		steps               int
	}{
		{8, 1e-5, 0.04, 0, 2250},
		{4, 1e-6, 0.032, 5, 32},
	}
	const tol = 1e-3
	for _, tc := range tests {
		opts := PRVOptions{HistogramSigma: tc.hist}
		sigma, err := PRVNoiseForEpsilon(tc.eps, tc.delta, tc.q, tc.steps, tol, opts)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if r := prvEps(t, tc.q, sigma, tc.steps, tc.delta, opts); r.Upper > tc.eps {
			t.Errorf("%+v: sigma %v gives upper bound %v above the target", tc, sigma, r.Upper)
		}
		if r := prvEps(t, tc.q, sigma/(1+2*tol), tc.steps, tc.delta, opts); r.Upper <= tc.eps {
			t.Errorf("%+v: sigma %v is not the smallest (upper %v at %v)", tc, sigma, r.Upper, sigma/(1+2*tol))
		}
		pld, err := PLDNoiseForEpsilon(tc.eps, tc.delta, tc.q, tc.steps, tol, PLDOptions{HistogramSigma: tc.hist})
		if err != nil {
			t.Fatal(err)
		}
		rdp, err := NoiseForEpsilon(tc.eps, tc.delta, tc.q, tc.steps, Options{HistogramSigma: tc.hist})
		if err != nil {
			t.Fatal(err)
		}
		if !(pld <= sigma*(1+tol) && sigma < rdp) {
			t.Errorf("%+v: noise PLD %v, PRV %v, RDP %v: want PLD <= PRV < RDP", tc, pld, sigma, rdp)
		}
	}
}

// TestSmallestSigmaSmooth: the interpolating search returns a sigma that
// meets the target with the one a tolerance below failing, for smooth
// curves of different steepness, and in fewer evaluations than bisection.
func TestSmallestSigmaSmooth(t *testing.T) {
	tests := []struct {
		name  string
		eps   func(s float64) float64
		start float64
		want  float64 // the exact smallest sigma for target 1
	}{
		{"inverse", func(s float64) float64 { return 3 / s }, 1, 3},
		{"inverse square", func(s float64) float64 { return 4 / (s * s) }, 10, 2},
		{"exponential", func(s float64) float64 { return math.Exp(5 - s) }, 1, 5},
		{"zero beyond", func(s float64) float64 { return math.Max(0, 2-s) }, 0.5, 1},
	}
	const tol = 1e-4
	for _, tc := range tests {
		n := 0
		got, err := smallestSigmaSmooth(func(s float64) (float64, error) { n++; return tc.eps(s), nil }, tc.start, 2, tol, 1)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got < tc.want || got > tc.want*(1+tol) {
			t.Errorf("%s: sigma %v, smallest %v (tol %g)", tc.name, got, tc.want, tol)
		}
		if n > 20 {
			t.Errorf("%s: %d evaluations", tc.name, n)
		}
	}
}

// TestAccountantsSurviveTinyNoise: a noise multiplier far below any real
// one (the no-DP audit's calibration to epsilon 1e6 tries such values)
// must give a finite answer quickly, not a grid of billions of points:
// both accountants coarsen their grids, which keeps them upper bounds.
func TestAccountantsSurviveTinyNoise(t *testing.T) {
	if testing.Short() || racebuild.Enabled {
		t.Skip("10 s of 8M-point FFTs; make test runs it without -race")
	}
	for _, sigma := range []float64{0.0056, 0.001} {
		pld := pldEps(t, 0.0524, sigma, 58, 1e-6, PLDOptions{})
		prv := prvEps(t, 0.0524, sigma, 58, 1e-6, PRVOptions{})
		if !(pld > 1000) || pld < prv.Lower || pld > prv.Upper {
			t.Errorf("sigma %g: PLD %v outside the PRV bracket %+v", sigma, pld, prv)
		}
		t.Logf("sigma %g: PLD %.6g, PRV [%.6g, %.6g]", sigma, pld, prv.Lower, prv.Upper)
	}
}
