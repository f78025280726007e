// dpinstruct patch: contiguous reductions against the generic iterator.

package ops

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/internal/gobackend"
	"github.com/gomlx/compute/shapes"
)

func TestReduceContiguousMatchesIterator(t *testing.T) {
	for _, tc := range []struct {
		dims, axes []int
	}{
		{[]int{7, 50}, []int{1}},
		{[]int{7, 50}, []int{0}},
		{[]int{3, 5, 40}, []int{1}},
		{[]int{3, 5, 4, 33}, []int{1, 2}},
		{[]int{3, 5, 4}, []int{0, 1, 2}},
	} {
		for _, op := range []compute.OpType{compute.OpTypeReduceSum, compute.OpTypeReduceMax} {
			t.Run(fmt.Sprint(op, tc.dims, tc.axes), func(t *testing.T) {
				shape := shapes.Make(dtypes.Float32, tc.dims...)
				in := make([]float32, shape.Size())
				for i := range in {
					in[i] = float32((i*7919)%1000)/100 - 5
				}
				outSize := shape.Size()
				for _, a := range tc.axes {
					outSize /= tc.dims[a]
				}
				want := make([]float32, outSize)
				it := NewReduceOutputIterator(tc.dims, tc.axes)
				first := make([]bool, outSize)
				for _, v := range in {
					j := it.Next()
					switch {
					case !first[j]:
						want[j], first[j] = v, true
					case op == compute.OpTypeReduceSum:
						want[j] += v
					default:
						want[j] = max(want[j], v)
					}
				}
				got := make([]float32, outSize)
				operand := &gobackend.Buffer{Flat: in, RawShape: shape}
				output := &gobackend.Buffer{Flat: got, RawShape: shapes.Make(dtypes.Float32, outSize)}
				if !reduceContiguousFloat32(op, operand, output, tc.axes) {
					t.Fatal("not handled")
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("element %d = %v, want %v", i, got[i], want[i])
					}
				}
			})
		}
	}
}
