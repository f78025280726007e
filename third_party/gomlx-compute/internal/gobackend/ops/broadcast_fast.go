// dpinstruct patch: broadcast patterns that binary ops run as contiguous loops.

package ops

import "github.com/gomlx/compute/shapes"

// broadcastKind names a broadcast of one binary-op operand that a plain
// loop over contiguous memory can run (the other operand has the output's
// shape).
type broadcastKind int

const (
	bcastOther    broadcastKind = iota // anything else: the generic iterator
	bcastRHSTiled                      // rhs is the output's trailing axes, repeated (a bias [d] over [N, d])
	bcastRHSRows                       // rhs is the output's leading axes, one value per row of n ([N, 1] over [N, d])
	bcastLHSTiled
	bcastLHSRows
)

// broadcastPattern returns the kind of broadcast and n: the length of the
// repeated block (tiled) or of a row (rows).
func broadcastPattern(lhsShape, rhsShape, outputShape shapes.Shape) (broadcastKind, int) {
	out := outputShape.Dimensions
	if outputShape.Size() == 0 {
		return bcastOther, 0
	}
	switch {
	case equalDims(lhsShape.Dimensions, out):
		if k, n := operandPattern(rhsShape.Dimensions, out); k != bcastOther {
			return k, n
		}
	case equalDims(rhsShape.Dimensions, out):
		switch k, n := operandPattern(lhsShape.Dimensions, out); k {
		case bcastRHSTiled:
			return bcastLHSTiled, n
		case bcastRHSRows:
			return bcastLHSRows, n
		}
	}
	return bcastOther, 0
}

// operandPattern classifies operand dims x against output dims out (same
// rank): 1s then out's trailing dims (tiled, n = their product), or out's
// leading dims then 1s (rows, n = the product of the broadcast dims).
func operandPattern(x, out []int) (broadcastKind, int) {
	if len(x) != len(out) {
		return bcastOther, 0
	}
	// Tiled: a prefix of 1s, then equal dims.
	k := 0
	for k < len(x) && x[k] == 1 {
		k++
	}
	if equalDims(x[k:], out[k:]) {
		n := 1
		for _, d := range out[k:] {
			n *= d
		}
		return bcastRHSTiled, n
	}
	// Rows: equal dims, then a suffix of 1s.
	k = len(x)
	for k > 0 && x[k-1] == 1 {
		k--
	}
	if equalDims(x[:k], out[:k]) {
		n := 1
		for _, d := range out[k:] {
			n *= d
		}
		return bcastRHSRows, n
	}
	return bcastOther, 0
}

func equalDims(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
