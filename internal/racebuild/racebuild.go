//go:build race

// Package racebuild tells whether the binary was built with -race, so the
// tests that take minutes of GoMLX compute (20x slower under the race
// detector) can skip there; make test runs them in a separate step
// without -race.
package racebuild

// Enabled is true in a -race build.
const Enabled = true
