// dpinstruct patch: AVX-512 exp and tanh, 16 float32 lanes at a time, with
// the same Cephes reduction and polynomials as Exp32 and Tanh32.

//go:build amd64 && goexperiment.simd

package fastmath

import "simd/archsimd"

var hasAVX512 = archsimd.X86.AVX512()

// exp16 is Exp32 on 16 lanes: x clamped to ±88, n = round(x·log2 e),
// g = x - n·ln 2 (split), e^g by the degree-7 polynomial, times 2^n
// (VSCALEFPS).
func exp16(x archsimd.Float32x16) archsimd.Float32x16 {
	x = x.Max(archsimd.BroadcastFloat32x16(-88.02969187150841)).Min(archsimd.BroadcastFloat32x16(88.02969187150841))
	n := x.Mul(archsimd.BroadcastFloat32x16(1.44269504088896341)).RoundToEvenScaled(0)
	g := n.MulAdd(archsimd.BroadcastFloat32x16(-0.693359375), x)
	g = n.MulAdd(archsimd.BroadcastFloat32x16(2.12194440e-4), g)
	p := archsimd.BroadcastFloat32x16(1.9875691500e-4)
	p = p.MulAdd(g, archsimd.BroadcastFloat32x16(1.3981999507e-3))
	p = p.MulAdd(g, archsimd.BroadcastFloat32x16(8.3334519073e-3))
	p = p.MulAdd(g, archsimd.BroadcastFloat32x16(4.1665795894e-2))
	p = p.MulAdd(g, archsimd.BroadcastFloat32x16(1.6666665459e-1))
	p = p.MulAdd(g, archsimd.BroadcastFloat32x16(5.0000001201e-1))
	one := archsimd.BroadcastFloat32x16(1)
	p = p.Mul(g.Mul(g)).Add(g).Add(one)
	return p.Scale(n)
}

// tanh16 is Tanh32 on 16 lanes: the odd polynomial below |x| = 0.625,
// 1 - 2/(e^{2|x|}+1) (|x| clamped to 9) above, with x's sign.
func tanh16(x archsimd.Float32x16) archsimd.Float32x16 {
	zero := archsimd.BroadcastFloat32x16(0)
	one := archsimd.BroadcastFloat32x16(1)
	ax := x.Max(zero.Sub(x))
	e := exp16(ax.Min(archsimd.BroadcastFloat32x16(9)).Mul(archsimd.BroadcastFloat32x16(2)))
	big := one.Sub(archsimd.BroadcastFloat32x16(2).Div(e.Add(one)))
	big = big.Merge(zero.Sub(big), x.GreaterEqual(zero)) // x's sign
	s := x.Mul(x)
	p := archsimd.BroadcastFloat32x16(-5.70498872745e-3)
	p = p.MulAdd(s, archsimd.BroadcastFloat32x16(2.06390887954e-2))
	p = p.MulAdd(s, archsimd.BroadcastFloat32x16(-5.37397155531e-2))
	p = p.MulAdd(s, archsimd.BroadcastFloat32x16(1.33314422036e-1))
	p = p.MulAdd(s, archsimd.BroadcastFloat32x16(-3.33332819422e-1))
	small := p.Mul(s).MulAdd(x, x)
	return big.Merge(small, ax.GreaterEqual(archsimd.BroadcastFloat32x16(0.625)))
}

func expSliceSIMD(in, out []float32) bool {
	if !hasAVX512 {
		return false
	}
	out = out[:len(in)]
	i := 0
	for ; i+16 <= len(in); i += 16 {
		exp16(archsimd.LoadFloat32x16Slice(in[i:])).StoreSlice(out[i:])
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
	i := 0
	for ; i+16 <= len(in); i += 16 {
		tanh16(archsimd.LoadFloat32x16Slice(in[i:])).StoreSlice(out[i:])
	}
	for ; i < len(in); i++ {
		out[i] = Tanh32(in[i])
	}
	return true
}
