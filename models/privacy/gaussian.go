package privacy

import (
	"fmt"
	"math"
)

// GaussianDelta returns the exact delta(eps) of the Gaussian mechanism
// with noise std sigma and L2 sensitivity sens (Balle & Wang 2018,
// Theorem 8):
//
//	delta = Phi(s/(2 sigma) - eps sigma/s) - e^eps Phi(-s/(2 sigma) - eps sigma/s).
func GaussianDelta(eps, sigma, sens float64) float64 {
	a := sens / (2 * sigma)
	b := eps * sigma / sens
	t1 := math.Exp(logPhi(a - b))
	t2 := math.Exp(eps + logPhi(-a-b))
	d := t1 - t2
	if d < 0 {
		return 0
	}
	return d
}

func checkGauss(delta, sens float64) error {
	if !(delta > 0 && delta < 1) {
		return fmt.Errorf("%w: delta %v not in (0,1)", ErrInvalid, delta)
	}
	if !(sens > 0) || math.IsInf(sens, 1) {
		return fmt.Errorf("%w: sensitivity %v not positive and finite", ErrInvalid, sens)
	}
	return nil
}

// AnalyticGaussianSigma returns the smallest noise std sigma for which the
// Gaussian mechanism with L2 sensitivity sens is (eps, delta)-DP, using
// the exact delta(eps) of Balle & Wang (2018) and bisection on log sigma
// to relative precision 1e-12.
func AnalyticGaussianSigma(eps, delta, sens float64) (float64, error) {
	if err := checkGauss(delta, sens); err != nil {
		return 0, err
	}
	if !(eps >= 0) || math.IsInf(eps, 1) {
		return 0, fmt.Errorf("%w: eps %v not finite and >= 0", ErrInvalid, eps)
	}
	f := func(s float64) bool { return GaussianDelta(eps, s, sens) <= delta }
	lo, hi := sens, sens
	for f(lo) {
		lo /= 2
		if lo < 1e-300 {
			return 0, fmt.Errorf("%w: no lower bracket", ErrInvalid)
		}
	}
	for !f(hi) {
		hi *= 2
		if hi > 1e300 {
			return 0, fmt.Errorf("%w: no upper bracket", ErrInvalid)
		}
	}
	for hi/lo-1 > 1e-12 {
		mid := math.Sqrt(lo * hi)
		if f(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

// GaussianEpsilon returns the smallest eps >= 0 for which the Gaussian
// mechanism with noise std sigma and L2 sensitivity sens is
// (eps, delta)-DP (inverse of AnalyticGaussianSigma), by bisection on eps
// to absolute precision 1e-12 (relative for large eps).
func GaussianEpsilon(sigma, delta, sens float64) (float64, error) {
	if err := checkGauss(delta, sens); err != nil {
		return 0, err
	}
	if !(sigma > 0) || math.IsInf(sigma, 1) {
		return 0, fmt.Errorf("%w: sigma %v not positive and finite", ErrInvalid, sigma)
	}
	f := func(e float64) bool { return GaussianDelta(e, sigma, sens) <= delta }
	if f(0) {
		return 0, nil
	}
	lo, hi := 0.0, 1.0
	for !f(hi) {
		lo = hi
		hi *= 2
		if hi > 1e300 {
			return math.Inf(1), nil
		}
	}
	for hi-lo > 1e-12*math.Max(1, hi) {
		mid := (lo + hi) / 2
		if mid == lo || mid == hi {
			break
		}
		if f(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}
