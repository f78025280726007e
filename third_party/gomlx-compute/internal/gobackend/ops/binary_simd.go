// dpinstruct patch: float32 Add, Sub, Mul and Div 16 lanes at a time.

//go:build amd64 && goexperiment.simd

package ops

import (
	"simd/archsimd"

	"github.com/gomlx/compute/shapes"
)

var simdBinaryOK = archsimd.X86.AVX512()

// simdBinaryFloat32 runs op on float32 operands of the same shape, with a
// scalar, or with a tiled or row broadcast (broadcastPattern); it reports
// false (nothing done) for other element types and shapes.
func simdBinaryFloat32[T any](op simdOp, lhs, rhs, output []T, lhsShape, rhsShape, outputShape shapes.Shape) bool {
	if !simdBinaryOK {
		return false
	}
	l, ok := any(lhs).([]float32)
	if !ok {
		return false
	}
	r, out := any(rhs).([]float32), any(output).([]float32)
	switch {
	case len(r) == 1 && len(l) == len(out):
		op.vectorScalar(l, r[0], out, false)
	case len(l) == 1 && len(r) == len(out):
		op.vectorScalar(r, l[0], out, true)
	case lhsShape.Equal(rhsShape):
		op.vectors(l, r, out)
	default:
		switch kind, n := broadcastPattern(lhsShape, rhsShape, outputShape); kind {
		case bcastRHSTiled:
			for base := 0; base < len(out); base += n {
				op.vectors(l[base:base+n], r, out[base:base+n])
			}
		case bcastLHSTiled:
			for base := 0; base < len(out); base += n {
				op.vectors(l, r[base:base+n], out[base:base+n])
			}
		case bcastRHSRows:
			for row, c := range r {
				op.vectorScalar(l[row*n:(row+1)*n], c, out[row*n:(row+1)*n], false)
			}
		case bcastLHSRows:
			for row, c := range l {
				op.vectorScalar(r[row*n:(row+1)*n], c, out[row*n:(row+1)*n], true)
			}
		default:
			return false
		}
	}
	return true
}

// vectors sets out[i] = a[i] op b[i].
func (op simdOp) vectors(a, b, out []float32) {
	out = out[:len(a)]
	b = b[:len(a)]
	i := 0
	for ; i+16 <= len(a); i += 16 {
		x, y := archsimd.LoadFloat32x16Slice(a[i:]), archsimd.LoadFloat32x16Slice(b[i:])
		op.apply(x, y).StoreSlice(out[i:])
	}
	for ; i < len(a); i++ {
		out[i] = op.scalar(a[i], b[i])
	}
}

// vectorScalar sets out[i] = a[i] op c, or c op a[i] when swapped.
func (op simdOp) vectorScalar(a []float32, c float32, out []float32, swapped bool) {
	out = out[:len(a)]
	cv := archsimd.BroadcastFloat32x16(c)
	i := 0
	for ; i+16 <= len(a); i += 16 {
		x := archsimd.LoadFloat32x16Slice(a[i:])
		if swapped {
			op.apply(cv, x).StoreSlice(out[i:])
		} else {
			op.apply(x, cv).StoreSlice(out[i:])
		}
	}
	for ; i < len(a); i++ {
		if swapped {
			out[i] = op.scalar(c, a[i])
		} else {
			out[i] = op.scalar(a[i], c)
		}
	}
}

func (op simdOp) apply(x, y archsimd.Float32x16) archsimd.Float32x16 {
	switch op {
	case simdAdd:
		return x.Add(y)
	case simdSub:
		return x.Sub(y)
	case simdMul:
		return x.Mul(y)
	default:
		return x.Div(y)
	}
}
