package memprobe

import (
	"runtime"
	"runtime/metrics"
	"time"
)

const (
	heapInUse  = "/memory/classes/heap/objects:bytes"
	heapLive   = "/gc/heap/live:bytes"
	heapAllocs = "/gc/heap/allocs:objects"
	// Interval between samples: reading two metrics costs a few
	// microseconds, well under 0.1% of a core at this rate.
	Interval = 5 * time.Millisecond
)

// Peaks is what a Probe saw.
type Peaks struct {
	// HeapInUse is the most heap in use (live and garbage not yet
	// collected) seen in any sample.
	HeapInUse uint64
	// Live is the most heap a collection during the probe found reachable.
	Live uint64
	// Baseline is the heap in use when the probe started, after a forced
	// collection: HeapInUse - Baseline is what the work added.
	Baseline uint64
	// Allocs counts heap objects allocated while the probe ran.
	Allocs uint64
}

// Added is the peak heap in use above the baseline.
func (p Peaks) Added() uint64 {
	if p.HeapInUse < p.Baseline {
		return 0
	}
	return p.HeapInUse - p.Baseline
}

// Max combines two probes of the same kind of work: the larger peaks,
// the summed allocations.
func (p Peaks) Max(q Peaks) Peaks {
	return Peaks{
		HeapInUse: max(p.HeapInUse, q.HeapInUse),
		Live:      max(p.Live, q.Live),
		Baseline:  max(p.Baseline, q.Baseline),
		Allocs:    p.Allocs + q.Allocs,
	}
}

// Probe samples the heap until Stop.
type Probe struct {
	stop     chan struct{}
	done     chan [2]uint64
	baseline uint64
	allocs   uint64
}

// Read returns the current value of one runtime/metrics uint64 metric.
func Read(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// HeapInUse is the heap in use now.
func HeapInUse() uint64 { return Read(heapInUse) }

// Start collects garbage (so one piece of work's garbage is not charged to
// the next), records the baseline and starts sampling.
func Start() *Probe {
	// Twice: sync.Pool (GoMLX's buffer pools among others) keeps what it
	// held for one more cycle in a victim cache.
	runtime.GC()
	runtime.GC()
	p := &Probe{stop: make(chan struct{}), done: make(chan [2]uint64, 1),
		baseline: Read(heapInUse), allocs: Read(heapAllocs)}
	go func() {
		s := []metrics.Sample{{Name: heapInUse}, {Name: heapLive}}
		var peak [2]uint64
		t := time.NewTicker(Interval)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak[0] = max(peak[0], s[0].Value.Uint64())
			peak[1] = max(peak[1], s[1].Value.Uint64())
			select {
			case <-p.stop:
				p.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Stop ends sampling and returns the peaks. Call it once.
func (p *Probe) Stop() Peaks {
	close(p.stop)
	peak := <-p.done
	return Peaks{HeapInUse: peak[0], Live: peak[1], Baseline: p.baseline, Allocs: Read(heapAllocs) - p.allocs}
}
