package lm

import (
	"math"
	"testing"
	"time"

	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
)

// TestParallelOpsDoNotDeadlock is the minimal reproduction of the worker
// pool deadlock of GoMLX's go backend (compute v0.1.2, docs/GOMLX_PATCH.md):
// with ops run in parallel, a graph with more independent matmuls than the
// pool has workers hung for ever, every worker held by a matmul waiting in
// Saturate for a free worker. The carried patch makes Saturate's caller do
// the work itself; this graph must finish.
func TestParallelOpsDoNotDeadlock(t *testing.T) {
	requireBackend(t)
	backend, err := gobackend.New("ops_parallel")
	if err != nil {
		t.Fatal(err)
	}
	const matmuls, width = 16, 256
	exec, err := NewExec(backend, func(x *Node) *Node {
		var sum *Node
		for i := range matmuls {
			y := MatMul(AddScalar(x, float64(i)), x) // independent of each other
			if sum == nil {
				sum = y
			} else {
				sum = Add(sum, y)
			}
		}
		return ReduceAllSum(sum)
	})
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.FromFlatDataAndDimensions(make([]float32, width*width), width, width)
	done := make(chan error, 1)
	go func() {
		for range 20 {
			if _, err := exec.Call(x); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("deadlock: 20 runs of 16 parallel matmuls did not finish in 2 minutes")
	}
}

// TestDotLayoutsMatchNaive covers the carried patch's DotGeneral layout
// choice (docs/GOMLX_PATCH.md): an operand whose contracting axis comes
// first is no longer transposed when the NonTransposed kernel can take it
// as it is. Weight gradients (xᵀ·g) and per-example Gram matrices, with
// and without a batch axis and across the small/large kernel threshold,
// must equal a float64 triple loop.
func TestDotLayoutsMatchNaive(t *testing.T) {
	requireBackend(t)
	backend, err := gobackend.New("ops_parallel")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		eq      string
		b, r    int // batch (1 = none), contracted rows
		i, o    int
		batched bool
	}{
		{"wgrad small", "ti,to->io", 1, 24, 5, 7, false},
		{"wgrad large", "ti,to->io", 1, 300, 70, 190, false},
		{"wgrad narrow-wide", "ti,to->io", 1, 257, 33, 520, false},
		{"wgrad wide-narrow", "ti,to->oi", 1, 257, 33, 520, false},
		{"batched wgrad", "bti,bto->bio", 3, 130, 40, 96, true},
		{"gram", "bto,bso->bts", 5, 64, 64, 200, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := make([]float32, tc.b*tc.r*tc.i)
			g := make([]float32, tc.b*tc.r*tc.o)
			for k := range x {
				x[k] = float32((k*7919)%201)/100 - 1
			}
			for k := range g {
				g[k] = float32((k*104729)%199)/100 - 1
			}
			xd, gd := []int{tc.r, tc.i}, []int{tc.r, tc.o}
			if tc.batched {
				xd, gd = []int{tc.b, tc.r, tc.i}, []int{tc.b, tc.r, tc.o}
			}
			if tc.eq == "bto,bso->bts" { // x: [b, t, o], g: [b, s, o] with s = t
				xd, gd = []int{tc.b, tc.r, tc.o}, []int{tc.b, tc.i, tc.o}
				x, g = make([]float32, tc.b*tc.r*tc.o), make([]float32, tc.b*tc.i*tc.o)
				for k := range x {
					x[k] = float32((k*7919)%201)/100 - 1
				}
				for k := range g {
					g[k] = float32((k*104729)%199)/100 - 1
				}
			}
			out, err := NewExec(backend, func(a, c *Node) *Node { return Einsum(tc.eq, a, c) })
			if err != nil {
				t.Fatal(err)
			}
			res, err := out.Exec(tensors.FromFlatDataAndDimensions(x, xd...), tensors.FromFlatDataAndDimensions(g, gd...))
			if err != nil {
				t.Fatal(err)
			}
			got := tensors.MustCopyFlatData[float32](res[0])
			var want []float64
			switch tc.eq {
			case "ti,to->io", "bti,bto->bio":
				want = make([]float64, tc.b*tc.i*tc.o)
				for b := range tc.b {
					for r := range tc.r {
						for i := range tc.i {
							for o := range tc.o {
								want[(b*tc.i+i)*tc.o+o] += float64(x[(b*tc.r+r)*tc.i+i]) * float64(g[(b*tc.r+r)*tc.o+o])
							}
						}
					}
				}
			case "ti,to->oi":
				want = make([]float64, tc.i*tc.o)
				for r := range tc.r {
					for i := range tc.i {
						for o := range tc.o {
							want[o*tc.i+i] += float64(x[r*tc.i+i]) * float64(g[r*tc.o+o])
						}
					}
				}
			case "bto,bso->bts":
				want = make([]float64, tc.b*tc.r*tc.i)
				for b := range tc.b {
					for ti := range tc.r {
						for s := range tc.i {
							for o := range tc.o {
								want[(b*tc.r+ti)*tc.i+s] += float64(x[(b*tc.r+ti)*tc.o+o]) * float64(g[(b*tc.i+s)*tc.o+o])
							}
						}
					}
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d outputs, want %d", len(got), len(want))
			}
			for k := range want {
				if d := math.Abs(float64(got[k]) - want[k]); d > 1e-3*(1+math.Abs(want[k])) {
					t.Fatalf("output %d = %v, want %v", k, got[k], want[k])
				}
			}
		})
	}
}
