package privacy

import (
	"errors"
	"math"
)

// Conversion selects how an RDP curve is turned into (epsilon, delta)-DP.
type Conversion int

const (
	// Improved is the conversion of Balle et al. (2020) / Canonne, Kamath
	// & Steinke (2020) used by TF-Privacy's compute_eps:
	// eps = RDP + log(1-1/a) - log(delta*a)/(a-1). Orders a <= 1.01 are
	// skipped (they give +Inf), and an order whose RDP r satisfies
	// delta^2 + expm1(-r) >= 0 gives eps = 0. It is the default.
	Improved Conversion = iota
	// Classic is the original conversion of Mironov (2017):
	// eps = RDP - log(delta)/(a-1).
	Classic
)

// ErrInvalid is returned (wrapped) for invalid arguments.
var ErrInvalid = errors.New("privacy: invalid argument")

// EpsilonFromRDP converts an RDP curve (rdp[k] at orders[k]) to the
// smallest epsilon over the orders, for the given delta in (0,1), and
// returns it with the order that attains it. If every order gives NaN or
// +Inf, the result is (+Inf, NaN).
func EpsilonFromRDP(orders, rdp []float64, delta float64, conv Conversion) (eps, order float64) {
	eps, order = math.Inf(1), math.NaN()
	if len(orders) != len(rdp) || !(delta > 0 && delta < 1) {
		return math.NaN(), math.NaN()
	}
	ld := math.Log(delta)
	for k, a := range orders {
		r := rdp[k]
		if math.IsNaN(r) || math.IsNaN(a) || a <= 1 || r < 0 {
			continue
		}
		var e float64
		switch conv {
		case Classic:
			e = r - ld/(a-1)
		default:
			switch {
			case delta*delta+math.Expm1(-r) >= 0:
				e = 0
			case a > 1.01:
				e = r + math.Log1p(-1/a) - (ld+math.Log(a))/(a-1)
			default:
				e = math.Inf(1)
			}
		}
		if e < eps {
			eps, order = e, a
		}
	}
	if eps < 0 {
		eps = 0
	}
	return eps, order
}

// DeltaFromRDP converts an RDP curve to the smallest delta over the orders
// for the given epsilon >= 0, returning it with the order attaining it.
// Improved: log delta = (a-1)(r - eps + log(1-1/a)) - log a (the inverse
// of the Improved epsilon formula, as in TF-Privacy's compute_delta);
// Classic: log delta = (a-1)(r - eps). Results are capped at 1.
func DeltaFromRDP(orders, rdp []float64, eps float64, conv Conversion) (delta, order float64) {
	best, order := math.Inf(1), math.NaN()
	for k, a := range orders {
		r := rdp[k]
		if math.IsNaN(r) || a <= 1 || r < 0 {
			continue
		}
		var ld float64
		switch conv {
		case Classic:
			ld = (a - 1) * (r - eps)
		default:
			// From eps = r + log(1-1/a) - (log delta + log a)/(a-1).
			ld = (a-1)*(r-eps+math.Log1p(-1/a)) - math.Log(a)
		}
		if ld < best {
			best, order = ld, a
		}
	}
	return math.Min(1, math.Exp(best)), order
}
