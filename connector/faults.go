package connector

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// faults lets the crash tests stop a real connector process at an exact
// point of a window's life, so a SIGKILL lands between two named steps
// (for example after ClickHouse acknowledged a window but before its
// offsets were committed). It is driven only by the environment variable
// DPINSTRUCT_FAULT=<point>[:<n>], where point is after-plan, after-charge,
// before-write, mid-output (half of a window's output-topic messages sent)
// or before-commit and n (default 1) picks the n-th window to reach it.
// At that point the process prints "FAULT <point> window=<id>" on stderr
// and blocks until killed (or, with a third field, <point>:<n>:<duration>,
// pauses that long and goes on). Unset in production; it carries no data.
type faults struct {
	point string
	nth   int
	seen  int
	// pause, when set (DPINSTRUCT_FAULT=<point>:<n>:<duration>), holds the
	// process that long at the point instead of until killed, so a test can
	// stop a dependency exactly there and let the step run against it.
	pause time.Duration
}

func faultsFromEnv() (faults, error) {
	v := os.Getenv("DPINSTRUCT_FAULT")
	if v == "" {
		return faults{}, nil
	}
	point, n, hasN := strings.Cut(v, ":")
	f := faults{point: point, nth: 1}
	switch point {
	case "after-plan", "after-charge", "before-write", "mid-output", "before-commit":
	default:
		return faults{}, fmt.Errorf("DPINSTRUCT_FAULT: unknown point %q (after-plan, after-charge, before-write, mid-output, before-commit)", point)
	}
	n, pause, hasPause := strings.Cut(n, ":")
	if hasPause {
		d, err := time.ParseDuration(pause)
		if err != nil || d <= 0 {
			return faults{}, fmt.Errorf("DPINSTRUCT_FAULT: bad pause %q", pause)
		}
		f.pause = d
	}
	if hasN {
		k, err := strconv.Atoi(n)
		if err != nil || k < 1 {
			return faults{}, fmt.Errorf("DPINSTRUCT_FAULT: bad count %q", n)
		}
		f.nth = k
	}
	return f, nil
}

func (f *faults) hit(point, windowID string, log *slog.Logger) {
	if f.point != point {
		return
	}
	f.seen++
	if f.seen != f.nth {
		return
	}
	fmt.Fprintf(os.Stderr, "FAULT %s window=%s\n", point, windowID)
	if f.pause > 0 {
		log.Warn("fault injection: pausing", "point", point, "window", windowID, "for", f.pause)
		time.Sleep(f.pause)
		return
	}
	log.Warn("fault injection: blocking until killed", "point", point, "window", windowID)
	for {
		time.Sleep(time.Hour)
	}
}
