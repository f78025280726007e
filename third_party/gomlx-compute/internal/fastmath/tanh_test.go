// dpinstruct patch: accuracy of Tanh32 against math.Tanh.

package fastmath

import (
	"math"
	"testing"
)

func TestTanh32(t *testing.T) {
	worstAbs, worstRel := 0.0, 0.0
	for x := float32(-12); x <= 12; x += 1.0 / 4096 {
		got, want := float64(Tanh32(x)), math.Tanh(float64(x))
		abs := math.Abs(got - want)
		worstAbs = math.Max(worstAbs, abs)
		if want != 0 {
			worstRel = math.Max(worstRel, abs/math.Abs(want))
		}
	}
	if worstRel > 4e-7 || worstAbs > 2e-7 {
		t.Errorf("Tanh32: worst relative error %.3g, absolute %.3g; want <= 4e-7, 2e-7", worstRel, worstAbs)
	}
	t.Logf("worst relative error %.3g, absolute %.3g", worstRel, worstAbs)
}
