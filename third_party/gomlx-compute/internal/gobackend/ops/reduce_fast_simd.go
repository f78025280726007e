// dpinstruct patch: the loops of reduce_fast.go, 16 lanes at a time.

//go:build amd64 && goexperiment.simd

package ops

import "simd/archsimd"

func addInto(dst, src []float32) {
	dst = dst[:len(src)]
	i := 0
	if simdBinaryOK {
		for ; i+16 <= len(src); i += 16 {
			archsimd.LoadFloat32x16Slice(dst[i:]).Add(archsimd.LoadFloat32x16Slice(src[i:])).StoreSlice(dst[i:])
		}
	}
	for ; i < len(src); i++ {
		dst[i] += src[i]
	}
}

func maxInto(dst, src []float32) {
	dst = dst[:len(src)]
	i := 0
	if simdBinaryOK {
		for ; i+16 <= len(src); i += 16 {
			archsimd.LoadFloat32x16Slice(dst[i:]).Max(archsimd.LoadFloat32x16Slice(src[i:])).StoreSlice(dst[i:])
		}
	}
	for ; i < len(src); i++ {
		dst[i] = max(dst[i], src[i])
	}
}
