package lm

import (
	"math"
	"strings"
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
// must equal a float64 reference.
func TestDotLayoutsMatchNaive(t *testing.T) {
	requireBackend(t)
	backend, err := gobackend.New("ops_parallel")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		eq   string
		size map[rune]int
	}{
		{"wgrad small", "ti,to->io", map[rune]int{'t': 24, 'i': 5, 'o': 7}},
		{"wgrad large", "ti,to->io", map[rune]int{'t': 300, 'i': 70, 'o': 190}},
		{"wgrad narrow-wide", "ti,to->io", map[rune]int{'t': 257, 'i': 33, 'o': 520}},
		{"wgrad wide-narrow", "ti,to->oi", map[rune]int{'t': 257, 'i': 33, 'o': 520}},
		{"batched wgrad", "bti,bto->bio", map[rune]int{'b': 3, 't': 130, 'i': 40, 'o': 96}},
		{"gram", "bto,bso->bts", map[rune]int{'b': 5, 't': 64, 's': 64, 'o': 200}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ins, outAxes, _ := strings.Cut(tc.eq, "->")
			lhsAxes, rhsAxes, _ := strings.Cut(ins, ",")
			dims := func(axes string) []int {
				var d []int
				for _, a := range axes {
					d = append(d, tc.size[a])
				}
				return d
			}
			fill := func(axes string, prime int) []float32 {
				n := 1
				for _, d := range dims(axes) {
					n *= d
				}
				v := make([]float32, n)
				for k := range v {
					v[k] = float32((k*prime)%201)/100 - 1
				}
				return v
			}
			x, g := fill(lhsAxes, 7919), fill(rhsAxes, 104729)
			exec, err := NewExec(backend, func(a, c *Node) *Node { return Einsum(tc.eq, a, c) })
			if err != nil {
				t.Fatal(err)
			}
			res, err := exec.Exec(tensors.FromFlatDataAndDimensions(x, dims(lhsAxes)...), tensors.FromFlatDataAndDimensions(g, dims(rhsAxes)...))
			if err != nil {
				t.Fatal(err)
			}
			got := tensors.MustCopyFlatData[float32](res[0])
			want := naiveEinsum(tc.size, lhsAxes, rhsAxes, outAxes, x, g)
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

// naiveEinsum is a float64 two-operand einsum over single-letter axes (row
// major), visiting every assignment of every axis: a reference, not fast.
func naiveEinsum(size map[rune]int, lhs, rhs, out string, x, y []float32) []float64 {
	var axes []rune
	seen := map[rune]bool{}
	for _, a := range lhs + rhs {
		if !seen[a] {
			seen[a] = true
			axes = append(axes, a)
		}
	}
	offset := func(spec string, at map[rune]int) int {
		o := 0
		for _, a := range spec {
			o = o*size[a] + at[a]
		}
		return o
	}
	n := 1
	for _, a := range out {
		n *= size[a]
	}
	res := make([]float64, n)
	at := map[rune]int{}
	var visit func(k int)
	visit = func(k int) {
		if k == len(axes) {
			res[offset(out, at)] += float64(x[offset(lhs, at)]) * float64(y[offset(rhs, at)])
			return
		}
		for i := range size[axes[k]] {
			at[axes[k]] = i
			visit(k + 1)
		}
	}
	visit(0)
	return res
}
