// dpinstruct patch: the operations binary_simd.go vectorises.

package ops

type simdOp uint8

const (
	simdAdd simdOp = iota
	simdSub
	simdMul
	simdDiv
)

func (op simdOp) scalar(a, b float32) float32 {
	switch op {
	case simdAdd:
		return a + b
	case simdSub:
		return a - b
	case simdMul:
		return a * b
	default:
		return a / b
	}
}
