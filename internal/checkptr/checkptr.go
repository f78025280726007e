// Package checkptr keeps a plain `go test -race` of a package that runs
// GoMLX graphs from crashing the whole test binary.
//
// Under -race, Go also enables checkptr, and GoMLX's matmul kernels
// (compute v0.1.2, internal/gobackend/dot/matmul, SIMD and non-SIMD alike)
// do pointer arithmetic that checkptr rejects with a fatal, unrecoverable
// "checkptr: pointer arithmetic result points to invalid allocation".
// Test with
//
//	go test -race -gcflags='github.com/gomlx/compute/...=-d=checkptr=0' ./...
//
// (results are exact without -race, so the arithmetic is benign; make test
// does this). Otherwise Require runs one tiny matmul in a child process (the
// package's own TestCheckptrProbe, which calls Probe) and, if checkptr kills
// it, skips the calling test with that instruction. Without -race Require
// does nothing.
//
// Each package that uses it declares
//
//	func TestCheckptrProbe(t *testing.T) { checkptr.Probe(t, backendFunc) }
//
// because the child process re-runs the package's own test binary.
package checkptr

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"

	"github.com/dpinstruct/dpinstruct/internal/racebuild"
)

const probeEnv = "DPINSTRUCT_CHECKPTR_PROBE"

var (
	once    sync.Once
	blocked bool
)

// Probe is the body of the package's TestCheckptrProbe: in the child
// process Require starts, it runs one matmul on backend(); otherwise it
// skips.
func Probe(t *testing.T, backend func() (compute.Backend, error)) {
	t.Helper()
	if os.Getenv(probeEnv) != "1" {
		t.Skip("helper for checkptr.Require")
	}
	b, err := backend()
	if err != nil {
		t.Fatal(err)
	}
	x := [][]float32{{1, 2, 3, 4}, {5, 6, 7, 8}, {1, 2, 3, 4}, {5, 6, 7, 8}}
	if _, err := graph.ExecOnce(b, func(a *graph.Node) *graph.Node { return graph.MatMul(a, a) }, x); err != nil {
		t.Fatal(err)
	}
}

// Require skips tb when checkptr would crash GoMLX's kernels (a -race build
// without the gcflags above).
func Require(tb testing.TB) {
	tb.Helper()
	if !racebuild.Enabled {
		return
	}
	once.Do(func() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCheckptrProbe$", "-test.count=1")
		cmd.Env = append(os.Environ(), probeEnv+"=1")
		out, err := cmd.CombinedOutput()
		blocked = err != nil && strings.Contains(string(out), "checkptr")
	})
	if blocked {
		tb.Skip("GoMLX matmul kernels fail Go's checkptr (enabled by -race); run with " +
			"-gcflags='github.com/gomlx/compute/...=-d=checkptr=0' to test under -race")
	}
}
