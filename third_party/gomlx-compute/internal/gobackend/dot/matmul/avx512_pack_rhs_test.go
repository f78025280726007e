// dpinstruct patch: the register-transposing rhs pack against unsafePackLHS.

//go:build amd64 && goexperiment.simd

package matmul

import (
	"fmt"
	"testing"
)

func TestAVX512PackRHSTransposedMatchesScalar(t *testing.T) {
	for _, tc := range []struct{ rows, cols, rowStart, colStart, copyRows, contracting, kernelRows int }{
		{64, 192, 0, 0, 64, 128, 32},
		{64, 192, 0, 128, 64, 64, 32},
		{70, 200, 3, 5, 67, 150, 32}, // partial strip, contracting tail
		{40, 40, 0, 0, 40, 17, 32},
		{20, 50, 0, 0, 20, 33, 32}, // fewer rows than a strip
		{16, 64, 0, 0, 16, 64, 4},
		{33, 31, 0, 0, 33, 15, 32}, // under 16 contracting columns
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			rhs := make([]float32, tc.rows*tc.cols)
			for i := range rhs {
				rhs[i] = float32(i) + 0.25
			}
			size := ((tc.copyRows + tc.kernelRows - 1) / tc.kernelRows) * tc.kernelRows * tc.contracting
			want := make([]float32, size+7)
			got := make([]float32, size+7)
			for i := range got {
				want[i], got[i] = -1, -1 // untouched cells must stay as they were
			}
			unsafePackLHS(rhs, want, tc.rowStart, tc.colStart, tc.cols, tc.copyRows, tc.contracting, tc.kernelRows)
			avx512PackRHSTransposedFloat32(rhs, got, tc.rowStart, tc.colStart, tc.cols, tc.copyRows, tc.contracting, tc.kernelRows)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("panel[%d] = %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}
