// dpinstruct patch: AVX-512 exp and tanh, 16 float32 lanes at a time, with
// the same Cephes reduction and polynomials as Exp32 and Tanh32.

//go:build amd64 && goexperiment.simd

package fastmath

import "simd/archsimd"

var hasAVX512 = archsimd.X86.AVX512()

// expConsts are exp16's constants, broadcast once per slice rather than
// once per vector.
type expConsts struct {
	lo, hi, log2e, ln2hi, ln2lo, p7, p6, p5, p4, p3, p2, one archsimd.Float32x16
}

func newExpConsts() *expConsts {
	b := archsimd.BroadcastFloat32x16
	return &expConsts{
		lo: b(-88.02969187150841), hi: b(88.02969187150841), log2e: b(1.44269504088896341),
		ln2hi: b(-0.693359375), ln2lo: b(2.12194440e-4),
		p7: b(1.9875691500e-4), p6: b(1.3981999507e-3), p5: b(8.3334519073e-3),
		p4: b(4.1665795894e-2), p3: b(1.6666665459e-1), p2: b(5.0000001201e-1), one: b(1),
	}
}

// exp16 is Exp32 on 16 lanes: x clamped to ±88, n = round(x·log2 e),
// g = x - n·ln 2 (split), e^g by the degree-7 polynomial, times 2^n
// (VSCALEFPS).
func exp16(x archsimd.Float32x16, c *expConsts) archsimd.Float32x16 {
	x = x.Max(c.lo).Min(c.hi)
	n := x.Mul(c.log2e).RoundToEvenScaled(0)
	g := n.MulAdd(c.ln2hi, x)
	g = n.MulAdd(c.ln2lo, g)
	p := c.p7.MulAdd(g, c.p6)
	p = p.MulAdd(g, c.p5)
	p = p.MulAdd(g, c.p4)
	p = p.MulAdd(g, c.p3)
	p = p.MulAdd(g, c.p2)
	p = p.Mul(g.Mul(g)).Add(g).Add(c.one)
	return p.Scale(n)
}

// tanhConsts are tanh16's constants (with exp16's).
type tanhConsts struct {
	*expConsts
	zero, two, nine, cut, q4, q3, q2, q1, q0 archsimd.Float32x16
}

func newTanhConsts() *tanhConsts {
	b := archsimd.BroadcastFloat32x16
	return &tanhConsts{expConsts: newExpConsts(), zero: b(0), two: b(2), nine: b(9), cut: b(0.625),
		q4: b(-5.70498872745e-3), q3: b(2.06390887954e-2), q2: b(-5.37397155531e-2),
		q1: b(1.33314422036e-1), q0: b(-3.33332819422e-1)}
}

// tanh16 is Tanh32 on 16 lanes: the odd polynomial below |x| = 0.625,
// 1 - 2/(e^{2|x|}+1) (|x| clamped to 9) above, with x's sign.
func tanh16(x archsimd.Float32x16, c *tanhConsts) archsimd.Float32x16 {
	ax := x.Max(c.zero.Sub(x))
	e := exp16(ax.Min(c.nine).Mul(c.two), c.expConsts)
	big := c.one.Sub(c.two.Div(e.Add(c.one)))
	big = big.Merge(c.zero.Sub(big), x.GreaterEqual(c.zero)) // x's sign
	s := x.Mul(x)
	p := c.q4.MulAdd(s, c.q3)
	p = p.MulAdd(s, c.q2)
	p = p.MulAdd(s, c.q1)
	p = p.MulAdd(s, c.q0)
	small := p.Mul(s).MulAdd(x, x)
	return big.Merge(small, ax.GreaterEqual(c.cut))
}

func expSliceSIMD(in, out []float32) bool {
	if !hasAVX512 {
		return false
	}
	out = out[:len(in)]
	c := newExpConsts()
	i := 0
	for ; i+16 <= len(in); i += 16 {
		exp16(archsimd.LoadFloat32x16Slice(in[i:]), c).StoreSlice(out[i:])
	}
	for ; i < len(in); i++ {
		out[i] = Exp32(in[i])
	}
	return true
}

func tanhSliceSIMD(in, out []float32) bool {
	if !hasAVX512 {
		return false
	}
	out = out[:len(in)]
	c := newTanhConsts()
	i := 0
	for ; i+16 <= len(in); i += 16 {
		tanh16(archsimd.LoadFloat32x16Slice(in[i:]), c).StoreSlice(out[i:])
	}
	for ; i < len(in); i++ {
		out[i] = Tanh32(in[i])
	}
	return true
}

// softmaxRowSIMD is SoftmaxRow32 16 lanes at a time: max, exp(x - max)
// with the sum, then the scale.
func softmaxRowSIMD(in, out []float32) bool {
	n := len(in)
	if !hasAVX512 || n < 16 {
		return false
	}
	out = out[:n]
	mv := archsimd.LoadFloat32x16Slice(in)
	i := 16
	for ; i+16 <= n; i += 16 {
		mv = mv.Max(archsimd.LoadFloat32x16Slice(in[i:]))
	}
	var lanes [16]float32
	mv.Store(&lanes)
	maxVal := lanes[0]
	for _, v := range lanes {
		maxVal = max(maxVal, v)
	}
	for ; i < n; i++ {
		maxVal = max(maxVal, in[i])
	}
	c := newExpConsts()
	m := archsimd.BroadcastFloat32x16(maxVal)
	sv := archsimd.BroadcastFloat32x16(0)
	i = 0
	for ; i+16 <= n; i += 16 {
		e := exp16(archsimd.LoadFloat32x16Slice(in[i:]).Sub(m), c)
		e.StoreSlice(out[i:])
		sv = sv.Add(e)
	}
	sv.Store(&lanes)
	var sum float32
	for _, v := range lanes {
		sum += v
	}
	for ; i < n; i++ {
		out[i] = Exp32(in[i] - maxVal)
		sum += out[i]
	}
	inv := archsimd.BroadcastFloat32x16(1 / sum)
	i = 0
	for ; i+16 <= n; i += 16 {
		archsimd.LoadFloat32x16Slice(out[i:]).Mul(inv).StoreSlice(out[i:])
	}
	for ; i < n; i++ {
		out[i] *= 1 / sum
	}
	return true
}
