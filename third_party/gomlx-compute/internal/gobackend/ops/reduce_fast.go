// dpinstruct patch: reductions of float32 over a run of consecutive axes.

package ops

import (
	"math"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/internal/gobackend"
)

// reduceContiguousFloat32 reduces a float32 operand over reduceAxes when
// they are consecutive, as [outer, reduced, inner]: for every output
// element the values are combined in increasing input order, the order the
// generic iterator uses, so sums are bit-identical to it. It reports false
// (nothing done) for other dtypes, ops or axes.
func reduceContiguousFloat32(op compute.OpType, operand, output *gobackend.Buffer, reduceAxes []int) bool {
	if op != compute.OpTypeReduceSum && op != compute.OpTypeReduceMax {
		return false
	}
	in, ok := operand.Flat.([]float32)
	if !ok {
		return false
	}
	out := output.Flat.([]float32)
	axes := slices.Sorted(slices.Values(reduceAxes))
	for i := 1; i < len(axes); i++ {
		if axes[i] != axes[i-1]+1 {
			return false
		}
	}
	dims := operand.RawShape.Dimensions
	outer, reduced, inner := 1, 1, 1
	for a, d := range dims {
		switch {
		case a < axes[0]:
			outer *= d
		case a <= axes[len(axes)-1]:
			reduced *= d
		default:
			inner *= d
		}
	}
	if outer*inner != len(out) || outer*reduced*inner != len(in) {
		return false
	}
	sum := op == compute.OpTypeReduceSum
	for o := range outer {
		dst := out[o*inner : (o+1)*inner]
		src := in[o*reduced*inner : (o+1)*reduced*inner]
		if inner == 1 {
			if sum {
				var acc float32
				for _, v := range src {
					acc += v
				}
				dst[0] = acc
			} else {
				acc := float32(math.Inf(-1))
				for _, v := range src {
					acc = max(acc, v)
				}
				dst[0] = acc
			}
			continue
		}
		copy(dst, src[:inner])
		for r := 1; r < reduced; r++ {
			if sum {
				addInto(dst, src[r*inner:(r+1)*inner])
			} else {
				maxInto(dst, src[r*inner:(r+1)*inner])
			}
		}
	}
	return true
}
