//go:build !race

package lm

import "testing"

// requireBackend is a no-op without -race (see checkptr_race_test.go).
func requireBackend(t testing.TB) { t.Helper() }

func requireBackendB(b *testing.B) { b.Helper() }
