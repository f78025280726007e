// dpinstruct patch: exp and tanh over float32 slices, vectorised where the
// CPU allows (slices_simd.go).

package fastmath

// ExpSlice32 sets out[i] = Exp32(in[i]) (within Exp32's accuracy).
func ExpSlice32(in, out []float32) {
	if expSliceSIMD(in, out) {
		return
	}
	for i, x := range in {
		out[i] = Exp32(x)
	}
}

// TanhSlice32 sets out[i] = Tanh32(in[i]) (within Tanh32's accuracy).
func TanhSlice32(in, out []float32) {
	if tanhSliceSIMD(in, out) {
		return
	}
	for i, x := range in {
		out[i] = Tanh32(x)
	}
}

// SoftmaxRow32 sets out = softmax(in) (exponentials by ExpSlice32).
func SoftmaxRow32(in, out []float32) {
	if softmaxRowSIMD(in, out) {
		return
	}
	maxVal := in[0]
	for _, v := range in {
		maxVal = max(maxVal, v)
	}
	for i, v := range in {
		out[i] = v - maxVal
	}
	ExpSlice32(out, out)
	var sum float64
	for _, v := range out {
		sum += float64(v)
	}
	inv := float32(1 / sum)
	for i := range out {
		out[i] *= inv
	}
}
