//go:build !race

package dpsgd

import "testing"

// requireBackend is a no-op without -race (see checkptr_race_test.go).
func requireBackend(t testing.TB) { t.Helper() }
