// dpinstruct patch: the plain loops of reduce_fast.go.

//go:build !(amd64 && goexperiment.simd)

package ops

func addInto(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}

func maxInto(dst, src []float32) {
	for i, v := range src {
		dst[i] = max(dst[i], v)
	}
}
