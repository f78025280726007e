// dpinstruct patch: transposeFast against the element-by-element iterator.

package ops

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

func TestTransposeFastMatchesIterator(t *testing.T) {
	for _, tc := range []struct {
		dims, perm []int
	}{
		{[]int{5}, []int{0}},
		{[]int{37, 53}, []int{1, 0}},
		{[]int{2048 / 16, 96}, []int{1, 0}},
		{[]int{3, 7, 4, 6}, []int{0, 2, 1, 3}},
		{[]int{3, 7, 4, 6}, []int{0, 2, 3, 1}},
		{[]int{3, 7, 4, 6}, []int{3, 2, 1, 0}},
		{[]int{2, 3, 4, 5, 6}, []int{1, 0, 4, 2, 3}},
		{[]int{4, 1, 17, 33}, []int{2, 3, 0, 1}},
	} {
		t.Run(fmt.Sprint(tc.dims, tc.perm), func(t *testing.T) {
			size := 1
			for _, d := range tc.dims {
				size *= d
			}
			in := make([]float32, size)
			for i := range in {
				in[i] = float32(i)
			}
			want := make([]float32, size)
			it := NewTransposeIterator(shapes.Make(dtypes.Float32, tc.dims...), tc.perm)
			for _, v := range in {
				want[it.Next()] = v
			}
			got := make([]float32, size)
			if !transposeFastFlat(in, got, tc.dims, tc.perm) {
				t.Fatal("float32 not handled")
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("element %d = %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}
