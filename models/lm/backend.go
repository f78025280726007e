package lm

// Choosing the compute backend by name.
//
// Models run on a GoMLX compute.Backend passed with WithBackend; without it
// they use DefaultBackend, the process-wide pure-Go CPU backend. For
// configuration files and flags, BackendFromName turns a string into a
// backend:
//
//	""  or "go"        the shared pure-Go backend (DefaultBackend, config
//	                   DefaultBackendConfig); the default
//	"go:<config>"      a new pure-Go backend with that gobackend config
//	                   (e.g. "go:ops_sequential")
//	"xla:<plugin>"     XLA through a PJRT plugin, e.g. "xla:cpu", "xla:cuda"
//	                   (plugin found in $PJRT_PLUGIN_LIBRARY_PATH,
//	                   /usr/local/lib/go-xla, ~/.local/lib/go-xla or the
//	                   linker's paths) or "xla:/abs/path/pjrt_c_api_cpu_plugin.so";
//	                   go-xla options may follow after commas
//	                   ("xla:cuda,preallocate=false")
//
// The XLA backend (github.com/gomlx/go-xla/compute/xla) uses cgo and
// dlopen, so it is compiled in only with the build tag "xla"
// (go build -tags xla); other builds answer "xla:..." with
// ErrNoXLA. Even with the tag, plugins are never downloaded: go-xla's
// auto-install (which fetches plugins from GitHub/PyPI) is switched off
// before the backend is created, so the plugin must already be installed
// (e.g. with go-xla's installer, run by hand). The CPU tests and the
// default build never touch XLA.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
)

// ErrNoXLA is returned (wrapped) by BackendFromName for "xla:..." in a
// build without the "xla" tag.
var ErrNoXLA = errors.New("lm: built without XLA support (build with -tags xla)")

// BackendFromName returns the backend a name selects: "" or "go" (the
// shared pure-Go backend, DefaultBackend), "go:<config>" (a new pure-Go
// backend with that config) or "xla:<plugin>[,options]" (XLA/PJRT, only in
// builds with -tags xla; the plugin must be installed locally, nothing is
// downloaded). See the comment at the top of backend.go.
func BackendFromName(name string) (compute.Backend, error) {
	kind, config, hasConfig := strings.Cut(strings.TrimSpace(name), ":")
	switch kind {
	case "", "go":
		if !hasConfig || config == "" {
			b, err := DefaultBackend()
			if err != nil {
				return nil, fmt.Errorf("lm: backend %q: %w", name, err)
			}
			return b, nil
		}
		b, err := gobackend.New(config)
		if err != nil {
			return nil, fmt.Errorf("lm: backend %q: %w", name, err)
		}
		return b, nil
	case "xla":
		if config == "" {
			return nil, fmt.Errorf("lm: backend %q: name the PJRT plugin, e.g. \"xla:cpu\", \"xla:cuda\" or \"xla:/path/to/plugin.so\"", name)
		}
		return newXLABackend(config)
	}
	return nil, fmt.Errorf("lm: unknown backend %q (want \"go\", \"go:<config>\" or \"xla:<plugin>\")", name)
}
