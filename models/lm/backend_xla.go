//go:build xla

package lm

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/go-xla/compute/xla"
)

// XLAAvailable reports whether this binary was built with XLA support
// (build tag "xla").
const XLAAvailable = true

func newXLABackend(config string) (compute.Backend, error) {
	// Never download plugins: only locally installed ones are used.
	xla.EnableAutoInstall(false)
	b, err := xla.New(config)
	if err != nil {
		return nil, fmt.Errorf("lm: backend xla:%s: %w", config, err)
	}
	return b, nil
}
