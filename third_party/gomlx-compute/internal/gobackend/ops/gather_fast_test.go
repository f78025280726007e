// dpinstruct patch: the element-gather fast path against the generic path.

package ops

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/internal/gobackend"
	"github.com/gomlx/compute/shapes"
)

func TestGatherElementsMatchesGeneric(t *testing.T) {
	for _, tc := range []struct {
		operand []int
		batch   []int
		axes    []int // startIndexMap
	}{
		{[]int{3, 5, 7}, []int{3, 5, 5}, []int{0, 1, 2}},
		{[]int{6, 9}, []int{4}, []int{0, 1}},
		{[]int{6, 9}, []int{2, 3}, []int{1, 0}},
	} {
		t.Run(fmt.Sprint(tc.operand, tc.batch, tc.axes), func(t *testing.T) {
			opShape := shapes.Make(dtypes.Float32, tc.operand...)
			in := make([]float32, opShape.Size())
			for i := range in {
				in[i] = float32(i) + 0.5
			}
			k := len(tc.axes)
			idxDims := append(append([]int(nil), tc.batch...), k)
			idxShape := shapes.Make(dtypes.Int32, idxDims...)
			idx := make([]int32, idxShape.Size())
			for i := range idx {
				dim := tc.operand[tc.axes[i%k]]
				idx[i] = int32((i*7919)%(dim+2)) - 1 // includes -1 and dim: clamped
			}
			outShape := shapes.Make(dtypes.Float32, tc.batch...)
			sliceSizes := make([]int, len(tc.operand))
			collapsed := make([]int, len(tc.operand))
			for i := range sliceSizes {
				sliceSizes[i], collapsed[i] = 1, i
			}
			params := &gatherNode{indexVectorAxis: len(idxDims) - 1, collapsedSlicesAxes: collapsed,
				startIndexMap: tc.axes, sliceSizes: sliceSizes}
			operand := &gobackend.Buffer{Flat: in, RawShape: opShape}
			indices := &gobackend.Buffer{Flat: idx, RawShape: idxShape}

			run := func(fast bool) []float32 {
				t.Helper()
				out := &gobackend.Buffer{Flat: make([]float32, outShape.Size()), RawShape: outShape}
				ob, _ := operand.MutableBytes()
				outb, _ := out.MutableBytes()
				if fast {
					done, err := gatherElements(params, operand, indices, ob, outb)
					if err != nil || !done {
						t.Fatalf("fast path: done %v, err %v", done, err)
					}
					return out.Flat.([]float32)
				}
				it := newGatherIterator(idxShape, params.indexVectorAxis, outShape, params.offsetOutputAxes)
				strides := make([]int, len(tc.operand))
				s := 4
				for a := len(tc.operand) - 1; a >= 0; a-- {
					strides[a] = s
					s *= tc.operand[a]
				}
				execGatherGeneric[int32](params, ob, outb, 4, it, make([]int, k), indices,
					make([]int, len(tc.operand)), strides, 1, make([]int, len(tc.operand)), tc.operand)
				return out.Flat.([]float32)
			}
			want, got := run(false), run(true)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("element %d = %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}
