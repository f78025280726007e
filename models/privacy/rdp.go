package privacy

import (
	"math"
)

// DefaultOrders returns the default Rényi orders: 1+x/10 for x in 1..99,
// the integers 11..63, then 128, 256, 512 and 1024. A fresh slice is
// returned on every call.
func DefaultOrders() []float64 {
	orders := make([]float64, 0, 99+53+4)
	for x := 1; x <= 99; x++ {
		orders = append(orders, 1+float64(x)/10)
	}
	for a := 11; a <= 63; a++ {
		orders = append(orders, float64(a))
	}
	return append(orders, 128, 256, 512, 1024)
}

// RDP returns the Rényi DP, at each of the given orders, of steps
// compositions of the Poisson-subsampled Gaussian mechanism with sampling
// rate q and noise multiplier sigma (noise std / L2 sensitivity). A nil
// orders slice means DefaultOrders().
//
// Special cases: q == 0 or steps == 0 give 0; q == 1 gives
// steps*alpha/(2 sigma^2); sigma == 0 (with q > 0) gives +Inf. Invalid
// inputs (q outside [0,1], sigma < 0 or NaN, steps < 0, an order <= 1 or
// NaN) give NaN at the affected orders.
func RDP(q, sigma float64, steps int, orders []float64) []float64 {
	if orders == nil {
		orders = DefaultOrders()
	}
	out := make([]float64, len(orders))
	for k, a := range orders {
		out[k] = rdpOne(q, sigma, steps, a)
	}
	return out
}

func rdpOne(q, sigma float64, steps int, alpha float64) float64 {
	switch {
	case math.IsNaN(q) || q < 0 || q > 1, math.IsNaN(sigma) || sigma < 0,
		steps < 0, math.IsNaN(alpha) || alpha <= 1:
		return math.NaN()
	case q == 0 || steps == 0:
		return 0
	case sigma == 0:
		return math.Inf(1)
	case math.IsInf(alpha, 1):
		return math.Inf(1)
	case q == 1:
		return float64(steps) * alpha / (2 * sigma * sigma)
	}
	var logA float64
	if alpha == math.Trunc(alpha) && alpha < 1<<40 {
		logA = logAInt(q, sigma, int(alpha))
	} else {
		logA = logAFrac(q, sigma, alpha)
	}
	r := float64(steps) * logA / (alpha - 1)
	if r < 0 { // rounding noise at tiny q
		r = 0
	}
	return r
}

// logAInt computes log A for integer alpha with the binomial expansion
// A = sum_i C(alpha,i) (1-q)^(alpha-i) q^i exp((i^2-i)/(2 sigma^2)),
// summed in log space.
func logAInt(q, sigma float64, alpha int) float64 {
	lq, l1q := math.Log(q), math.Log1p(-q)
	s2 := 2 * sigma * sigma
	a := float64(alpha)
	lgA1, _ := math.Lgamma(a + 1)
	terms := make([]float64, alpha+1)
	for i := 0; i <= alpha; i++ {
		fi := float64(i)
		lgI, _ := math.Lgamma(fi + 1)
		lgJ, _ := math.Lgamma(a - fi + 1)
		terms[i] = lgA1 - lgI - lgJ + fi*lq + (a-fi)*l1q + (fi*fi-fi)/s2
	}
	return logSumExp(terms)
}

// logAFrac computes log A for fractional alpha with the two-series
// expansion of Mironov, Talwar & Zhang (2019), Section 3.3: the integral
// defining A is split at z0 = sigma^2 log(1/q - 1) + 1/2 and each half is
// expanded as a (generalised) binomial series whose terms carry a
// Gaussian tail factor erfc(.)/2. Terms are added until both series' terms
// fall below exp(-30).
func logAFrac(q, sigma, alpha float64) float64 {
	lq, l1q := math.Log(q), math.Log1p(-q)
	s2 := sigma * sigma
	z0 := s2*math.Log(1/q-1) + 0.5
	rt := math.Sqrt2 * sigma
	var acc0, acc1 signedLog
	acc0.l, acc1.l = math.Inf(-1), math.Inf(-1)
	acc0.pos, acc1.pos = true, true
	// |C(alpha,i)| and its sign, updated by C(a,i+1) = C(a,i)(a-i)/(i+1).
	logCoef, coefPos := 0.0, true
	for i := 0; i < 1_000_000; i++ {
		fi := float64(i)
		j := alpha - fi
		lt0 := logCoef + fi*lq + j*l1q
		lt1 := logCoef + j*lq + fi*l1q
		le0 := math.Log(0.5) + logErfc((fi-z0)/rt)
		le1 := math.Log(0.5) + logErfc((z0-j)/rt)
		ls0 := lt0 + (fi*fi-fi)/(2*s2) + le0
		ls1 := lt1 + (j*j-j)/(2*s2) + le1
		acc0.add(ls0, coefPos)
		acc1.add(ls1, coefPos)
		if math.Max(ls0, ls1) < -30 {
			break
		}
		f := (alpha - fi) / (fi + 1)
		if f < 0 {
			coefPos = !coefPos
		}
		if f == 0 {
			break
		}
		logCoef += math.Log(math.Abs(f))
	}
	v0, v1 := acc0.value(), acc1.value()
	return logAdd(v0, v1)
}

// signedLog accumulates a signed sum whose magnitude is kept in log space.
type signedLog struct {
	l   float64 // log |sum|
	pos bool    // sign of sum
}

func (s *signedLog) add(lx float64, pos bool) {
	if math.IsInf(lx, -1) {
		return
	}
	if math.IsInf(s.l, -1) {
		s.l, s.pos = lx, pos
		return
	}
	if s.pos == pos {
		s.l = logAdd(s.l, lx)
		return
	}
	if lx > s.l {
		s.l, s.pos = logSubPos(lx, s.l), pos
	} else {
		s.l = logSubPos(s.l, lx)
	}
}

// value returns log of the sum, clamping a (numerically) negative sum to
// log 0.
func (s signedLog) value() float64 {
	if !s.pos {
		return math.Inf(-1)
	}
	return s.l
}

func logAdd(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(b, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// logSubPos returns log(exp(a)-exp(b)) for a >= b.
func logSubPos(a, b float64) float64 {
	if math.IsInf(b, -1) {
		return a
	}
	if a == b {
		return math.Inf(-1)
	}
	d := b - a
	if d > -0.693 {
		return a + math.Log(-math.Expm1(d))
	}
	return a + math.Log1p(-math.Exp(d))
}

func logSumExp(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		if x > m {
			m = x
		}
	}
	if math.IsInf(m, 0) {
		return m
	}
	s := 0.0
	for _, x := range xs {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}

// logErfc returns log(erfc(x)), using an asymptotic expansion where
// erfc underflows.
func logErfc(x float64) float64 {
	if x < 25 {
		return math.Log(math.Erfc(x))
	}
	x2 := x * x
	// erfc(x) ~ exp(-x^2)/(x sqrt(pi)) * (1 - 1/(2x^2) + 3/(4x^4) - 15/(8x^6) + 105/(16x^8))
	inv := 1 / x2
	series := 1 - 0.5*inv + 0.75*inv*inv - 1.875*inv*inv*inv + 6.5625*inv*inv*inv*inv
	return -x2 - math.Log(x) - 0.5*math.Log(math.Pi) + math.Log(series)
}

// logPhi returns log Phi(x) for the standard normal CDF
// Phi(x) = erfc(-x/sqrt2)/2.
func logPhi(x float64) float64 {
	return math.Log(0.5) + logErfc(-x/math.Sqrt2)
}
