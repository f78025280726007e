//go:build race

package dpsgd

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/core/graph"

	"github.com/dpinstruct/dpinstruct/models/lm"
)

// Under -race, Go also enables checkptr, and GoMLX's matmul kernels
// (compute v0.1.2, internal/gobackend/dot/matmul, SIMD and non-SIMD alike)
// do pointer arithmetic that checkptr rejects with a fatal, unrecoverable
// "checkptr: pointer arithmetic result points to invalid allocation".
// Test with
//
//	go test -race -gcflags='github.com/gomlx/compute/...=-d=checkptr=0' ./...
//
// (results are exact without -race, so the arithmetic is benign). To keep a
// plain `go test -race ./...` from crashing the whole package, the probe
// below runs one tiny matmul in a child process and, if checkptr kills it,
// the tests that execute graphs skip with that instruction.

const checkptrProbeEnv = "DPSGD_CHECKPTR_PROBE"

var (
	checkptrOnce    sync.Once
	checkptrBlocked bool
)

func TestCheckptrProbe(t *testing.T) {
	if os.Getenv(checkptrProbeEnv) != "1" {
		t.Skip("helper for requireBackend")
	}
	b, err := lm.DefaultBackend()
	if err != nil {
		t.Fatal(err)
	}
	x := [][]float32{{1, 2, 3, 4}, {5, 6, 7, 8}, {1, 2, 3, 4}, {5, 6, 7, 8}}
	if _, err := graph.ExecOnce(b, func(a *graph.Node) *graph.Node { return graph.MatMul(a, a) }, x); err != nil {
		t.Fatal(err)
	}
}

// requireBackend skips the test when checkptr would crash the backend.
func requireBackend(t testing.TB) {
	t.Helper()
	checkptrOnce.Do(func() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCheckptrProbe$", "-test.count=1")
		cmd.Env = append(os.Environ(), checkptrProbeEnv+"=1")
		out, err := cmd.CombinedOutput()
		checkptrBlocked = err != nil && strings.Contains(string(out), "checkptr")
	})
	if checkptrBlocked {
		t.Skip("GoMLX matmul kernels fail Go's checkptr (enabled by -race); run with " +
			"-gcflags='github.com/gomlx/compute/...=-d=checkptr=0' to test under -race")
	}
}
