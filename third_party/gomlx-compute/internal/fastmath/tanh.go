// dpinstruct patch: a float32 tanh for the go backend's Tanh op.

package fastmath

// Tanh32 approximates tanh(x) for float32 (Cephes tanhf, Stephen L.
// Moshier): an odd polynomial for |x| < 0.625, 1 - 2/(e^{2|x|}+1) with
// Exp32 above, and ±1 beyond |x| > 9 (where tanh rounds to ±1 in float32).
// Max error against math.Tanh: a few float32 ulps (see TestTanh32).
func Tanh32(x float32) float32 {
	z := x
	if z < 0 {
		z = -z
	}
	switch {
	case z > 9:
		z = 1
	case z >= 0.625:
		z = 1 - 2/(Exp32(2*z)+1)
	default:
		s := x * x
		return ((((-5.70498872745e-3*s+2.06390887954e-2)*s-5.37397155531e-2)*s+
			1.33314422036e-1)*s-3.33332819422e-1)*s*x + x
	}
	if x < 0 {
		return -z
	}
	return z
}
