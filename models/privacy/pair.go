package privacy

import "math"

// gaussPair is one neighbouring direction of the Poisson-subsampled
// Gaussian mechanism (sensitivity 1, noise sigma, rate q): the pair of
// output distributions (P, Q) whose privacy loss log(dP/dQ)(x) the PLD
// and PRV accountants discretise. The loss is increasing in the output x,
// so intervals of loss are intervals of x.
//
//   - remove: P = (1-q)N(0,s^2) + qN(1,s^2), Q = N(0,s^2);
//     loss in (log(1-q), +Inf).
//   - add: P = N(0,s^2), Q = (1-q)N(0,s^2) + qN(-1,s^2);
//     loss in (-Inf, -log(1-q)).
//
// q = 1 (the plain Gaussian mechanism) is the remove direction with
// loss (2x-1)/(2s^2); both directions are the same then.
type gaussPair struct {
	q, sigma float64
	remove   bool
}

// log1mq is log(1-q), -Inf at q = 1.
func (g gaussPair) log1mq() float64 {
	if g.q < 1 {
		return math.Log1p(-g.q)
	}
	return math.Inf(-1)
}

// loss is log(dP/dQ)(x).
func (g gaussPair) loss(x float64) float64 {
	s2 := g.sigma * g.sigma
	if g.remove {
		return logAdd(g.log1mq(), math.Log(g.q)+(2*x-1)/(2*s2))
	}
	return -logAdd(g.log1mq(), math.Log(g.q)-(2*x+1)/(2*s2))
}

// inv is the output x at which the loss is l (the inverse of loss).
func (g gaussPair) inv(l float64) float64 {
	s2 := g.sigma * g.sigma
	if g.remove {
		return s2*(g.logExcess(l)-math.Log(g.q)) + 0.5
	}
	return -s2*(g.logExcess(-l)-math.Log(g.q)) - 0.5
}

// logExcess(l) = log(e^l - (1-q)), -Inf if l <= log(1-q).
func (g gaussPair) logExcess(l float64) float64 {
	if g.q == 1 {
		return l
	}
	c := g.log1mq()
	if l <= c {
		return math.Inf(-1)
	}
	if l-c > 1 {
		// e^(l-c) would overflow past l ~ 709 (a tiny noise): factor e^l.
		return l + math.Log1p(-math.Exp(c-l))
	}
	return c + math.Log(math.Expm1(l-c))
}

// mixture is the mass of (a, b] under (1-q)N(0,s^2) + qN(shift,s^2).
func (g gaussPair) mixture(a, b, shift float64) float64 {
	return (1-g.q)*pldGaussMass(a, b, 0, g.sigma) + g.q*pldGaussMass(a, b, shift, g.sigma)
}

// massP is P((a, b]).
func (g gaussPair) massP(a, b float64) float64 {
	if g.remove {
		return g.mixture(a, b, 1)
	}
	return pldGaussMass(a, b, 0, g.sigma)
}

// massQ is Q((a, b]).
func (g gaussPair) massQ(a, b float64) float64 {
	if g.remove {
		return pldGaussMass(a, b, 0, g.sigma)
	}
	return g.mixture(a, b, -1)
}

// densityP is P's density at x.
func (g gaussPair) densityP(x float64) float64 {
	n := func(mu float64) float64 {
		z := (x - mu) / g.sigma
		return math.Exp(-z*z/2) / (g.sigma * math.Sqrt(2*math.Pi))
	}
	if g.remove {
		return (1-g.q)*n(0) + g.q*n(1)
	}
	return n(0)
}

// span is the output range from z standard deviations below P's lowest
// component mean to z above its highest: P puts at most Phi(-z) outside
// it on each side.
func (g gaussPair) span(z float64) (xlo, xhi float64) {
	if g.remove {
		return -z * g.sigma, 1 + z*g.sigma
	}
	// The add direction's loss is bounded above, so the lower end of Q's
	// shifted component (-1) matters for the PLD grid; P is N(0, s^2).
	return -1 - z*g.sigma, z * g.sigma
}

// pairMasses caches, at sorted outputs xs, the CDF of each Gaussian
// component of the pair from both sides, so that the P and Q masses of
// intervals between those outputs cost no further erfc (the
// discretisation asks for several per grid point). Masses are taken on
// the side of each component's mean that avoids cancellation, as
// pldGaussMass does.
type pairMasses struct {
	g      gaussPair
	xs     []float64
	mus    [2]float64   // component means: 0 and the shifted one
	lo, up [2][]float64 // lo[c][i] = Phi((x_i-mu_c)/s), up[c][i] = Phi((mu_c-x_i)/s)
}

func (g gaussPair) masses(xs []float64) pairMasses {
	m := pairMasses{g: g, xs: xs, mus: [2]float64{0, -1}}
	if g.remove {
		m.mus[1] = 1
	}
	phi := func(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }
	for c, mu := range m.mus {
		m.lo[c] = make([]float64, len(xs))
		m.up[c] = make([]float64, len(xs))
		for i, x := range xs {
			m.lo[c][i] = phi((x - mu) / g.sigma)
			m.up[c][i] = phi((mu - x) / g.sigma)
		}
	}
	return m
}

// comp is component c's mass on (x_i, x_j]; i = -1 means -Inf and
// j = len(xs) means +Inf.
func (m pairMasses) comp(c, i, j int) float64 {
	n := len(m.xs)
	lo := func(k int) float64 {
		switch k {
		case -1:
			return 0
		case n:
			return 1
		}
		return m.lo[c][k]
	}
	up := func(k int) float64 {
		switch k {
		case -1:
			return 1
		case n:
			return 0
		}
		return m.up[c][k]
	}
	if j <= i {
		return 0
	}
	if i >= 0 && m.xs[i] >= m.mus[c] {
		return math.Max(0, up(i)-up(j))
	}
	return math.Max(0, lo(j)-lo(i))
}

// P and Q are the pair's masses on (x_i, x_j] (indices as for comp).
func (m pairMasses) P(i, j int) float64 {
	if m.g.remove {
		return (1-m.g.q)*m.comp(0, i, j) + m.g.q*m.comp(1, i, j)
	}
	return m.comp(0, i, j)
}

func (m pairMasses) Q(i, j int) float64 {
	if m.g.remove {
		return m.comp(0, i, j)
	}
	return (1-m.g.q)*m.comp(0, i, j) + m.g.q*m.comp(1, i, j)
}
