package dpsgd

import (
	"testing"

	"github.com/dpinstruct/dpinstruct/internal/checkptr"
	"github.com/dpinstruct/dpinstruct/models/lm"
)

// TestCheckptrProbe is run by checkptr.Require in a child process.
func TestCheckptrProbe(t *testing.T) { checkptr.Probe(t, lm.DefaultBackend) }

// requireBackend skips tests that run graphs where -race's checkptr would
// crash GoMLX's kernels (see internal/checkptr).
func requireBackend(tb testing.TB) { tb.Helper(); checkptr.Require(tb) }
