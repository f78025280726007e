package privacy

import (
	"fmt"
	"math"
)

// Accountant composes mechanisms by adding their RDP curves over a fixed
// set of orders. The zero value is ready to use: it takes DefaultOrders()
// and the Improved conversion on first use.
type Accountant struct {
	// Orders are the Rényi orders; nil means DefaultOrders(). Do not
	// change them after the first Compose call.
	Orders []float64
	// Conversion selects the RDP -> (eps, delta) conversion.
	Conversion Conversion

	rdp []float64
}

// NewAccountant returns an accountant over the given orders (nil for the
// defaults) using the given conversion.
func NewAccountant(orders []float64, conv Conversion) *Accountant {
	return &Accountant{Orders: orders, Conversion: conv}
}

func (a *Accountant) init() {
	if a.Orders == nil {
		a.Orders = DefaultOrders()
	}
	if a.rdp == nil {
		a.rdp = make([]float64, len(a.Orders))
	}
}

// ComposeSGD adds steps steps of DP-SGD with Poisson sampling rate q and
// noise multiplier sigma (the subsampled Gaussian mechanism).
func (a *Accountant) ComposeSGD(q, sigma float64, steps int) {
	a.init()
	for k, r := range RDP(q, sigma, steps, a.Orders) {
		a.rdp[k] += r
	}
}

// ComposeGaussian adds one Gaussian mechanism with L2 sensitivity 1 and
// noise std sigma (for example the DP histogram release with sigma_h),
// whose RDP is alpha/(2 sigma^2).
func (a *Accountant) ComposeGaussian(sigma float64) {
	a.ComposeSGD(1, sigma, 1)
}

// RDP returns a copy of the composed RDP curve, aligned with Orders.
func (a *Accountant) RDP() []float64 {
	a.init()
	return append([]float64(nil), a.rdp...)
}

// Epsilon returns the epsilon of everything composed so far at the given
// delta, minimised over the orders, and the order attaining it.
func (a *Accountant) Epsilon(delta float64) (eps, order float64) {
	a.init()
	return EpsilonFromRDP(a.Orders, a.rdp, delta, a.Conversion)
}

// Delta returns the delta of everything composed so far at the given
// epsilon, minimised over the orders, and the order attaining it.
func (a *Accountant) Delta(eps float64) (delta, order float64) {
	a.init()
	return DeltaFromRDP(a.Orders, a.rdp, eps, a.Conversion)
}

// Options tunes NoiseForEpsilon. The zero value means DefaultOrders(),
// the Improved conversion, relative tolerance 1e-4 and no extra
// mechanisms.
type Options struct {
	Orders     []float64
	Conversion Conversion
	// RelTol is the relative tolerance on sigma: the search stops when
	// hi/lo - 1 <= RelTol and returns hi, which meets the target. 0 means
	// 1e-4.
	RelTol float64
	// HistogramSigma, if > 0, composes one sensitivity-1 Gaussian release
	// with this noise std with the DP-SGD steps (it is fixed, not searched).
	HistogramSigma float64
}

// NoiseForEpsilon returns (to relative tolerance opts.RelTol, default 1e-4)
// the smallest noise multiplier sigma such that steps steps of DP-SGD with
// Poisson rate q (plus the optional histogram release) are
// (targetEps, delta)-DP under the RDP accountant. The returned sigma always
// meets the target; the true minimum lies within a factor (1+RelTol) below
// it. It bisects on log sigma.
func NoiseForEpsilon(targetEps, delta, q float64, steps int, opts Options) (float64, error) {
	switch {
	case !(targetEps > 0) || math.IsInf(targetEps, 1):
		return 0, fmt.Errorf("%w: target eps %v", ErrInvalid, targetEps)
	case !(delta > 0 && delta < 1):
		return 0, fmt.Errorf("%w: delta %v", ErrInvalid, delta)
	case !(q > 0 && q <= 1):
		return 0, fmt.Errorf("%w: q %v not in (0,1]", ErrInvalid, q)
	case steps < 1:
		return 0, fmt.Errorf("%w: steps %d", ErrInvalid, steps)
	}
	tol := opts.RelTol
	if tol <= 0 {
		tol = 1e-4
	}
	orders := opts.Orders
	if orders == nil {
		orders = DefaultOrders()
	}
	var base []float64
	if opts.HistogramSigma > 0 {
		base = RDP(1, opts.HistogramSigma, 1, orders)
		if e, _ := EpsilonFromRDP(orders, base, delta, opts.Conversion); e > targetEps {
			return 0, fmt.Errorf("%w: histogram release alone gives eps %v > target %v", ErrInvalid, e, targetEps)
		}
	}
	ok := func(sigma float64) (bool, error) {
		r := RDP(q, sigma, steps, orders)
		for k := range base {
			r[k] += base[k]
		}
		e, _ := EpsilonFromRDP(orders, r, delta, opts.Conversion)
		return e <= targetEps, nil
	}
	return smallestSigma(ok, 1, tol, targetEps)
}

// smallestSigma bisects on log sigma for the smallest sigma with ok(sigma),
// starting from a bracket around start, and returns the upper end once
// hi/lo - 1 <= tol: a sigma that meets the target, at most a factor
// (1+tol) above the smallest one (ok is monotone in sigma).
func smallestSigma(ok func(sigma float64) (bool, error), start, tol, targetEps float64) (float64, error) {
	test := func(sigma float64) bool {
		good, err := ok(sigma)
		return err == nil && good
	}
	lo, hi := start, start
	for test(lo) {
		lo /= 2
		if lo < 1e-6 {
			return lo, nil
		}
	}
	for !test(hi) {
		hi *= 2
		if hi > 1e6 {
			return 0, fmt.Errorf("%w: no sigma <= 1e6 meets eps %v", ErrInvalid, targetEps)
		}
	}
	if lo > hi/2 { // lo was never decreased below the first failing point
		lo = hi / 2
	}
	for hi/lo-1 > tol {
		mid := math.Sqrt(lo * hi)
		if test(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

// tightSearchStart checks a tight accountant's calibration target and
// returns where its noise search starts: the RDP answer, which meets the
// target under the looser RDP bound and so under a tighter one too, or 1
// where RDP cannot meet it at all (say a histogram RDP prices above the
// target). check runs the accountant once at the start, so that it says
// which of its inputs is wrong; the search would only see "no sigma meets
// the target".
func tightSearchStart(targetEps, delta, q float64, steps int, histSigma float64, check func(sigma float64) error) (float64, error) {
	if !(targetEps > 0) || math.IsInf(targetEps, 1) {
		return 0, fmt.Errorf("%w: target eps %v", ErrInvalid, targetEps)
	}
	start, err := NoiseForEpsilon(targetEps, delta, q, steps, Options{RelTol: 1e-3, HistogramSigma: histSigma})
	if err != nil {
		start = 1
	}
	if err := check(start); err != nil {
		return 0, err
	}
	return start, nil
}

// PLDNoiseForEpsilon is NoiseForEpsilon under the PLD accountant
// (PLDEpsilon, with opts' interval and histogram release): the smallest
// noise multiplier, to relative tolerance relTol (0 means 1e-4), at which
// steps steps of DP-SGD with Poisson rate q meet (targetEps, delta). The
// returned sigma always meets the target by PLDEpsilon's upper bound; the
// true minimum under that bound lies within a factor (1+relTol) below it.
// The search starts from the RDP answer (tightSearchStart).
func PLDNoiseForEpsilon(targetEps, delta, q float64, steps int, relTol float64, opts PLDOptions) (float64, error) {
	start, err := tightSearchStart(targetEps, delta, q, steps, opts.HistogramSigma, func(sigma float64) error {
		_, err := PLDEpsilon(q, sigma, steps, delta, opts)
		return err
	})
	if err != nil {
		return 0, err
	}
	if relTol <= 0 {
		relTol = 1e-4
	}
	if opts.HistogramSigma > 0 {
		if e, err := PLDEpsilon(1, opts.HistogramSigma, 1, delta, PLDOptions{Interval: opts.Interval}); err != nil || e > targetEps {
			return 0, fmt.Errorf("%w: histogram release alone gives eps %v > target %v", ErrInvalid, e, targetEps)
		}
	}
	// Search first on a grid ten times coarser (~10x faster, a looser but
	// still valid bound: its answer meets the target on the finer grid
	// too, within ~0.5% of the finer answer), then refine from it.
	h := opts.Interval
	if h == 0 {
		h = DefaultPLDInterval
	}
	spread := 2.0
	if coarse := 10 * h; coarse <= 1e-2 {
		c := opts
		c.Interval = coarse
		epsAt := func(sigma float64) (float64, error) { return PLDEpsilon(q, sigma, steps, delta, c) }
		if s, err := smallestSigmaSmooth(epsAt, start, 2, relTol, targetEps); err == nil {
			start, spread = s, 1.02
		}
	}
	epsAt := func(sigma float64) (float64, error) { return PLDEpsilon(q, sigma, steps, delta, opts) }
	return smallestSigmaSmooth(epsAt, start, spread, relTol, targetEps)
}

// smallestSigmaSmooth is smallestSigma for an accountant that is slow to
// evaluate but returns epsilon itself, which is smooth and decreasing in
// sigma: it brackets from [start/spread, start] (spread > 1: how far below
// start the answer may be), then steps by interpolating
// log epsilon linearly in log sigma (regula falsi, Illinois variant, kept
// off the bracket's ends), and after each step probes the point one
// tolerance away on the other side, which closes the bracket once the
// interpolation is that close. It returns the upper end of a bracket with
// hi/lo - 1 <= tol: a sigma that meets the target, at most a factor
// (1+tol) above the smallest one. Typically 5-8 evaluations instead of
// bisection's ~15.
func smallestSigmaSmooth(epsAt func(sigma float64) (float64, error), start, spread, tol, targetEps float64) (float64, error) {
	lt := math.Log(targetEps)
	// f is log eps - log target at log sigma; f <= 0 meets the target.
	f := func(sigma float64) (float64, error) {
		e, err := epsAt(sigma)
		if err != nil {
			return 0, err
		}
		if e <= 0 {
			return math.Inf(-1), nil
		}
		return math.Log(e) - lt, nil
	}
	// Bracket: hi meets the target, lo does not. The first guess is
	// [start/spread, start]; each miss widens the step geometrically.
	hi := start
	fhi, err := f(hi)
	if err != nil {
		return 0, err
	}
	lo, flo, grow := hi, fhi, spread
	for fhi > 0 {
		lo, flo = hi, fhi
		hi *= grow
		grow *= grow
		if hi > 1e6 {
			return 0, fmt.Errorf("%w: no sigma <= 1e6 meets eps %v", ErrInvalid, targetEps)
		}
		if fhi, err = f(hi); err != nil {
			return 0, err
		}
	}
	for shrink := spread; flo <= 0; shrink *= shrink {
		hi, fhi = lo, flo
		lo /= shrink
		if lo < 1e-6 {
			return lo, nil
		}
		if flo, err = f(lo); err != nil {
			return 0, err
		}
	}
	// Now f(lo) > 0 >= f(hi).
	last := 0 // +1: the last step replaced hi; -1: lo (Illinois)
	for hi/lo-1 > tol {
		t := flo / (flo - fhi)
		if math.IsInf(fhi, -1) || math.IsNaN(t) {
			t = 0.5 // no slope at hi (epsilon 0): bisect
		}
		t = min(max(t, 0.02), 0.98)
		mid := math.Exp(math.Log(lo) + t*(math.Log(hi)-math.Log(lo)))
		fm, err := f(mid)
		if err != nil {
			return 0, err
		}
		// probe is the point one tolerance past mid, towards the other end:
		// once the interpolation is that close, it closes the bracket.
		var probe float64
		if fm <= 0 {
			hi, fhi = mid, fm
			if last == 1 {
				flo /= 2
			}
			last, probe = 1, hi/(1+tol)
		} else {
			lo, flo = mid, fm
			if last == -1 {
				fhi /= 2
			}
			last, probe = -1, lo*(1+tol)
		}
		if !(probe > lo && probe < hi) {
			continue
		}
		fp, err := f(probe)
		if err != nil {
			return 0, err
		}
		if fp <= 0 {
			hi, fhi = probe, fp
		} else {
			lo, flo = probe, fp
		}
	}
	return hi, nil
}

// PRVNoiseForEpsilon is NoiseForEpsilon under the PRV accountant: the
// smallest noise multiplier, to relative tolerance relTol (0 means 1e-4),
// whose PRV upper bound (PRVResult.Upper, the estimate plus the bound's
// half-width) meets (targetEps, delta). Calibrating to the estimate would
// not be a guarantee; the upper bound is one, so the PRV's noise is a
// little above the PLD's (whose single answer is itself an upper bound).
func PRVNoiseForEpsilon(targetEps, delta, q float64, steps int, relTol float64, opts PRVOptions) (float64, error) {
	start, err := tightSearchStart(targetEps, delta, q, steps, opts.HistogramSigma, func(sigma float64) error {
		_, err := PRVEpsilon(q, sigma, steps, delta, opts)
		return err
	})
	if err != nil {
		return 0, err
	}
	if relTol <= 0 {
		relTol = 1e-4
	}
	epsAt := func(sigma float64) (float64, error) {
		r, err := PRVEpsilon(q, sigma, steps, delta, opts)
		return r.Upper, err
	}
	return smallestSigmaSmooth(epsAt, start, 2, relTol, targetEps)
}
