// dpinstruct patch: the slice versions against math.Exp and math.Tanh.

package fastmath

import (
	"math"
	"testing"
)

func TestSlices32(t *testing.T) {
	var in []float32
	for x := float32(-100); x <= 100; x += 1.0 / 64 {
		in = append(in, x)
	}
	in = append(in, 0, -0.3, 0.3, 0.6249, 0.625, 9, 9.5, -9.5)
	out := make([]float32, len(in))
	ExpSlice32(in, out)
	for i, x := range in {
		want := math.Exp(float64(x))
		if want < 1e-37 || want > 1e38 {
			continue // clamped ends: only finite and tiny required
		}
		if rel := math.Abs(float64(out[i])-want) / want; rel > 3e-7 {
			t.Fatalf("ExpSlice32(%v) = %v, want %v (relative error %.3g)", x, out[i], want, rel)
		}
	}
	TanhSlice32(in, out)
	for i, x := range in {
		want := math.Tanh(float64(x))
		if d := math.Abs(float64(out[i]) - want); d > 2e-7 && d > 4e-7*math.Abs(want) {
			t.Fatalf("TanhSlice32(%v) = %v, want %v", x, out[i], want)
		}
	}
}

func BenchmarkSlices32(b *testing.B) {
	in := make([]float32, 4096)
	for i := range in {
		in[i] = float32(i)/512 - 4
	}
	out := make([]float32, len(in))
	b.Run("exp", func(b *testing.B) {
		for b.Loop() {
			ExpSlice32(in, out)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/value")
	})
	b.Run("tanh", func(b *testing.B) {
		for b.Loop() {
			TanhSlice32(in, out)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/value")
	})
}

func TestSoftmaxRow32(t *testing.T) {
	for _, n := range []int{1, 7, 16, 50, 4096} {
		in := make([]float32, n)
		for i := range in {
			in[i] = float32((i*37)%101)/10 - 5
		}
		out := make([]float32, n)
		SoftmaxRow32(in, out)
		mx := math.Inf(-1)
		for _, v := range in {
			mx = math.Max(mx, float64(v))
		}
		total := 0.0
		for _, v := range in {
			total += math.Exp(float64(v) - mx)
		}
		for i, v := range in {
			want := math.Exp(float64(v)-mx) / total
			if math.Abs(float64(out[i])-want) > 1e-6*want+1e-12 {
				t.Fatalf("n=%d: softmax[%d] = %v, want %v", n, i, out[i], want)
			}
		}
	}
}
