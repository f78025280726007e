// dpinstruct patch: without the simd experiment the generic loops run.

//go:build !(amd64 && goexperiment.simd)

package ops

import "github.com/gomlx/compute/shapes"

func simdBinaryFloat32[T any](simdOp, []T, []T, []T, shapes.Shape, shapes.Shape, shapes.Shape) bool {
	return false
}
