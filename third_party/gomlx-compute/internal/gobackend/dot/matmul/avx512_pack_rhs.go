// Copyright 2023-2026 The GoMLX Authors. SPDX-License-Identifier: Apache-2.0

//go:build amd64 && goexperiment.simd

package matmul

import (
	"simd/archsimd"
	"unsafe"
)

// avx512PackRHSTransposedFloat32 is unsafePackLHS for a float32 rhs in
// LayoutTransposed ([cross, contracting], packed in strips of kernelRows
// cross rows, element (k, r) of a strip at k*kernelRows + r).
//
// dpinstruct patch: unsafePackLHS moves one element at a time with a
// kernelRows-strided store; for kernelRows = 32 (the AVX-512 kernel's
// RHSL1KernelCols) it took as long as the per-example Gram products it fed.
// Here each group of 4 rows x 16 contracting columns is transposed in
// registers (avx512Transpose4x16x32bits) and written as 16 runs of 4.
// Partial strips and a contracting tail under 16 go to unsafePackLHS's
// element loop (the tail through a sub-panel call), so the result is
// identical.
func avx512PackRHSTransposedFloat32(rhs, panel []float32,
	rowStart, colStart, rhsCols, copyRows, contractingCols, kernelRows int) {
	if kernelRows%4 != 0 || copyRows < kernelRows || contractingCols < 16 {
		unsafePackLHS(rhs, panel, rowStart, colStart, rhsCols, copyRows, contractingCols, kernelRows)
		return
	}
	fullRows := (copyRows / kernelRows) * kernelRows
	vecCols := (contractingCols / 16) * 16
	stripLen := contractingCols * kernelRows
	for strip := 0; strip < fullRows; strip += kernelRows {
		dst := panel[(strip/kernelRows)*stripLen:]
		for g := 0; g < kernelRows; g += 4 {
			src := rhs[(rowStart+strip+g)*rhsCols+colStart:]
			for k := 0; k < vecCols; k += 16 {
				v0 := archsimd.LoadUint32x16((*[16]uint32)(unsafe.Pointer(&src[k])))
				v1 := archsimd.LoadUint32x16((*[16]uint32)(unsafe.Pointer(&src[rhsCols+k])))
				v2 := archsimd.LoadUint32x16((*[16]uint32)(unsafe.Pointer(&src[2*rhsCols+k])))
				v3 := archsimd.LoadUint32x16((*[16]uint32)(unsafe.Pointer(&src[3*rhsCols+k])))
				t0, t1, t2, t3 := avx512Transpose4x16x32bits(v0, v1, v2, v3)
				for j, t := range [4]archsimd.Uint32x16{t0, t1, t2, t3} {
					// t holds contracting columns k+4j .. k+4j+3, 4 rows each.
					base := (k+4*j)*kernelRows + g
					lo, hi := t.GetLo(), t.GetHi()
					lo.GetLo().Store((*[4]uint32)(unsafe.Pointer(&dst[base])))
					lo.GetHi().Store((*[4]uint32)(unsafe.Pointer(&dst[base+kernelRows])))
					hi.GetLo().Store((*[4]uint32)(unsafe.Pointer(&dst[base+2*kernelRows])))
					hi.GetHi().Store((*[4]uint32)(unsafe.Pointer(&dst[base+3*kernelRows])))
				}
			}
			for k := vecCols; k < contractingCols; k++ {
				for r := range 4 {
					dst[k*kernelRows+g+r] = src[r*rhsCols+k]
				}
			}
		}
	}
	if fullRows < copyRows {
		// The partial last strip, padded with zeros as unsafePackLHS does.
		unsafePackLHS(rhs, panel[(fullRows/kernelRows)*stripLen:], rowStart+fullRows, colStart, rhsCols,
			copyRows-fullRows, contractingCols, kernelRows)
	}
}
