package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// newProgressBar is the look every long command shares: a count, an ETA,
// on stderr so stdout stays clean for data, redrawn at most 5 times a
// second. extra adds command-specific options (bytes, clear on finish).
func newProgressBar(w io.Writer, max int64, desc string, extra ...progressbar.Option) *progressbar.ProgressBar {
	opts := append([]progressbar.Option{
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200 * time.Millisecond),
	}, extra...)
	return progressbar.NewOptions64(max, opts...)
}

// stageBars draws one bar per window stage (connector.StageProgress).
type stageBars struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

func (s *stageBars) Stage(name string, total int) {
	if s.bar != nil {
		_ = s.bar.Finish()
		fmt.Fprintln(s.w)
	}
	s.bar = newProgressBar(s.w, int64(total), name, progressbar.OptionShowElapsedTimeOnFinish())
}

func (s *stageBars) Advance(n int) {
	if s.bar != nil {
		_ = s.bar.Add(n)
	}
}
