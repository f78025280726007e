//go:build !xla

package lm

import (
	"fmt"

	"github.com/gomlx/compute"
)

// XLAAvailable reports whether this binary was built with XLA support
// (build tag "xla").
const XLAAvailable = false

func newXLABackend(config string) (compute.Backend, error) {
	return nil, fmt.Errorf("%w: cannot create backend xla:%s", ErrNoXLA, config)
}
