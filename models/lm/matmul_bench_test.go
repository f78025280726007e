package lm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
)

// BenchmarkMatmul measures the pure-Go backend's float32 matmul on the
// shapes that dominate the generator (a batch of token rows times a weight
// matrix) and on square ones, in GFLOP/s (2*M*K*N per product, host copies
// included). docs/BENCHMARKS.md sets it next to the machine's peak.
func BenchmarkMatmul(b *testing.B) {
	requireBackend(b)
	backend, err := DefaultBackend()
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []struct{ M, K, N int }{
		{2048, 192, 192},  // one projection of a 32x64 batch, width 192
		{2048, 192, 4096}, // the tied head of that batch
		{256, 512, 512},
		{1024, 1024, 1024},
		{2048, 2048, 2048},
	} {
		b.Run(fmt.Sprintf("%dx%dx%d", s.M, s.K, s.N), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			x := make([]float32, s.M*s.K)
			y := make([]float32, s.K*s.N)
			for i := range x {
				x[i] = rng.Float32()
			}
			for i := range y {
				y[i] = rng.Float32()
			}
			xt := tensors.FromFlatDataAndDimensions(x, s.M, s.K)
			yt := tensors.FromFlatDataAndDimensions(y, s.K, s.N)
			exec, err := NewExec(backend, func(a, c *Node) *Node { return Dot(a, c).Product() })
			if err != nil {
				b.Fatal(err)
			}
			if _, err := exec.Call(xt, yt); err != nil { // compile outside the timing
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := exec.Call(xt, yt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(2*float64(s.M)*float64(s.K)*float64(s.N)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
