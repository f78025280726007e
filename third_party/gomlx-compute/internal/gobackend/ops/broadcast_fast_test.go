// dpinstruct patch: the contiguous broadcast loops against the iterator.

package ops

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/internal/gobackend"
	"github.com/gomlx/compute/shapes"
)

func TestBroadcastLoopsMatchIterator(t *testing.T) {
	for _, tc := range []struct{ lhs, rhs []int }{
		{[]int{6, 5}, []int{1, 5}}, // bias
		{[]int{6, 5}, []int{6, 1}}, // per-row scale
		{[]int{1, 5}, []int{6, 5}}, // lhs tiled
		{[]int{6, 1}, []int{6, 5}}, // lhs rows
		{[]int{2, 3, 4, 5}, []int{1, 1, 4, 5}},
		{[]int{2, 3, 4, 5}, []int{2, 3, 1, 1}},
		{[]int{2, 3, 4}, []int{2, 1, 4}}, // middle axis: iterator
		{[]int{6, 1}, []int{1, 5}},       // both broadcast: iterator
	} {
		t.Run(fmt.Sprint(tc.lhs, tc.rhs), func(t *testing.T) {
			ls, rs := shapes.Make(dtypes.Float32, tc.lhs...), shapes.Make(dtypes.Float32, tc.rhs...)
			outDims := make([]int, max(len(tc.lhs), len(tc.rhs)))
			for i := range outDims {
				outDims[i] = max(dimAt(tc.lhs, i, len(outDims)), dimAt(tc.rhs, i, len(outDims)))
			}
			os := shapes.Make(dtypes.Float32, outDims...)
			lhs, rhs := make([]float32, ls.Size()), make([]float32, rs.Size())
			for i := range lhs {
				lhs[i] = float32(i + 1)
			}
			for i := range rhs {
				rhs[i] = float32(100 * (i + 1))
			}
			for _, op := range []struct {
				name string
				exec func(l, r, o []float32, ls, rs, os shapes.Shape)
				fn   func(a, b float32) float32
			}{
				{"sub", execSubNumericGeneric[float32], func(a, b float32) float32 { return a - b }},
				{"div", execDivNumericGeneric[float32], func(a, b float32) float32 { return a / b }},
			} {
				want := make([]float32, os.Size())
				if len(lhs) == 1 {
					for i := range want {
						want[i] = op.fn(lhs[0], rhs[i])
					}
				} else {
					it := gobackend.NewZippedBroadcastIterator(ls, rs, os)
					for ix := range it.IterFlatIndices() {
						want[ix.TgtFlatIdx] = op.fn(lhs[ix.LHSFlatIdx], rhs[ix.RHSFlatIdx])
					}
				}
				got := make([]float32, os.Size())
				op.exec(lhs, rhs, got, ls, rs, os)
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%s: element %d = %v, want %v", op.name, i, got[i], want[i])
					}
				}
			}
		})
	}
}

// dimAt is dims' axis i when dims is right-aligned to rank (1 before it).
func dimAt(dims []int, i, rank int) int {
	if j := i - (rank - len(dims)); j >= 0 {
		return dims[j]
	}
	return 1
}
