package memprobe

import (
	"testing"
	"time"
)

var sink [][]byte

func TestProbeSeesAnAllocation(t *testing.T) {
	p := Start()
	sink = make([][]byte, 64)
	for i := range sink {
		sink[i] = make([]byte, 1<<20) // 64 MiB held
	}
	time.Sleep(3 * Interval)
	got := p.Stop()
	if got.Added() < 60<<20 {
		t.Errorf("peak added %d bytes, want >= 60 MiB", got.Added())
	}
	if got.Allocs < 64 {
		t.Errorf("allocs %d, want >= 64", got.Allocs)
	}
	sink = nil
}
