// Package memprobe measures a piece of work's heap use for benchmarks: the
// most heap in use (live and not yet collected) and the most heap a
// collection found live while it ran, sampled from runtime/metrics, and
// the objects it allocated. It exists so every benchmark that states a
// peak-memory figure measures it the same way; testing.B's -benchmem
// gives bytes allocated, not peaks.
package memprobe
