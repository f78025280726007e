// dpinstruct patch: a fast transpose for the go backend.

package ops

import "sort"

// transposeFastFlat transposes in (dims, row-major) into out by perm
// (output axis i is input axis perm[i]) for []float32, []float64, []int32
// and []int64; it reports false for other element types.
func transposeFastFlat(in, out any, dims, perm []int) bool {
	switch in := in.(type) {
	case []float32:
		transposeFast(in, out.([]float32), dims, perm)
	case []float64:
		transposeFast(in, out.([]float64), dims, perm)
	case []int32:
		transposeFast(in, out.([]int32), dims, perm)
	case []int64:
		transposeFast(in, out.([]int64), dims, perm)
	default:
		return false
	}
	return true
}

// transposeTile is the side of the square tiles a 2D transpose is done in,
// so that both the reads and the writes of a tile stay in cache.
const transposeTile = 16

// transposeFast first merges runs of input axes that stay adjacent and in
// order in the output, then either copies contiguous runs (when the input's
// last axis stays last) or transposes tile by tile between the output axis
// fed by the input's last axis (contiguous reads) and the output's last axis
// (contiguous writes).
func transposeFast[T any](in, out []T, dims, perm []int) {
	// Groups of output axes whose input axes are consecutive and in order.
	type group struct{ firstIn, size int }
	var groups []group
	for i := 0; i < len(perm); {
		j := i
		size := dims[perm[i]]
		for j+1 < len(perm) && perm[j+1] == perm[j]+1 {
			j++
			size *= dims[perm[j]]
		}
		groups = append(groups, group{perm[i], size})
		i = j + 1
	}
	r := len(groups)
	if r == 1 {
		copy(out, in)
		return
	}
	// Merged input axes are the groups in input order.
	order := make([]int, r) // order[k]: the group that is merged input axis k
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return groups[order[a]].firstIn < groups[order[b]].firstIn })
	inStride := make([]int, r) // stride in the input of output axis i
	stride := 1
	for k := r - 1; k >= 0; k-- {
		inStride[order[k]] = stride
		stride *= groups[order[k]].size
	}
	outDims := make([]int, r)
	outStride := make([]int, r)
	stride = 1
	for i := r - 1; i >= 0; i-- {
		outDims[i] = groups[i].size
		outStride[i] = stride
		stride *= outDims[i]
	}
	last := r - 1
	a := order[r-1] // the output axis fed by the input's (contiguous) last axis
	// Odometer over every output axis but a and last.
	idx := make([]int, r)
	for {
		ib, ob := 0, 0
		for i := range r {
			ib += idx[i] * inStride[i]
			ob += idx[i] * outStride[i]
		}
		if a == last {
			n := outDims[last]
			copy(out[ob:ob+n], in[ib:ib+n])
		} else {
			A, L := outDims[a], outDims[last]
			oA, iL := outStride[a], inStride[last]
			for i0 := 0; i0 < A; i0 += transposeTile {
				i1 := min(i0+transposeTile, A)
				for j0 := 0; j0 < L; j0 += transposeTile {
					j1 := min(j0+transposeTile, L)
					for i := i0; i < i1; i++ {
						o := ob + i*oA
						src := ib + i
						for j := j0; j < j1; j++ {
							out[o+j] = in[src+j*iL]
						}
					}
				}
			}
		}
		// Next outer index.
		axis := last
		for axis >= 0 {
			if axis == a || axis == last {
				axis--
				continue
			}
			idx[axis]++
			if idx[axis] < outDims[axis] {
				break
			}
			idx[axis] = 0
			axis--
		}
		if axis < 0 {
			return
		}
	}
}
