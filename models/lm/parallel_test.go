package lm

import (
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
