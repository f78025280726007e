//go:build goexperiment.simd && amd64

package cluster

import "simd/archsimd"

// useSIMD selects the AVX2/FMA distance kernel, which is what makes the
// k-means assignment step (n x K distances per iteration) several times
// faster. Results are reproducible on a given CPU, but differ in the last
// bits from the portable kernel's, so machines with and without AVX2 can
// disagree slightly.
var useSIMD = archsimd.X86.AVX2() && archsimd.X86.FMA()

// sqDist is the squared Euclidean distance between a and b (len(b) >=
// len(a)).
func sqDist(a, b []float32) float32 {
	if !useSIMD || len(a) < 16 {
		return sqDistScalar(a, b)
	}
	b = b[:len(a)]
	var acc0, acc1 archsimd.Float32x8
	// Array-pointer loads on shrinking slices keep the bounds checks to
	// one per load and out of the index arithmetic.
	for len(a) >= 16 && len(b) >= 16 {
		d0 := archsimd.LoadFloat32x8((*[8]float32)(a[:8])).Sub(archsimd.LoadFloat32x8((*[8]float32)(b[:8])))
		d1 := archsimd.LoadFloat32x8((*[8]float32)(a[8:16])).Sub(archsimd.LoadFloat32x8((*[8]float32)(b[8:16])))
		acc0 = d0.MulAdd(d0, acc0)
		acc1 = d1.MulAdd(d1, acc1)
		a, b = a[16:], b[16:]
	}
	if len(a) >= 8 && len(b) >= 8 {
		d0 := archsimd.LoadFloat32x8((*[8]float32)(a[:8])).Sub(archsimd.LoadFloat32x8((*[8]float32)(b[:8])))
		acc0 = d0.MulAdd(d0, acc0)
		a, b = a[8:], b[8:]
	}
	var lanes [8]float32
	acc0.Add(acc1).Store(&lanes)
	s := ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
	for i, v := range a {
		d := v - b[i]
		s += d * d
	}
	return s
}
