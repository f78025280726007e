package sink

import (
	"context"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

var syntheticCols = []string{
	"id", "window_id", "attempt", "group_id", "seq", "text", "cluster",
	"generator_version", "epsilon", "delta", "created_at",
}

// RowID is the id of a published synthetic row: unique among the rows of
// published_instructions, where one attempt per window is visible.
func RowID(windowID string, seq uint32) string {
	return windowID + "-" + strconv.FormatUint(uint64(seq), 10)
}

// WriteWindow stores the synthetic rows of w (attempt w.Attempt) in one
// batch, then marks the window written (OutputRows = len(rows)) with that
// attempt. Rows are deterministic given the attempt (id from window id and
// seq, created_at = w.ClosedAt), and synthetic_instructions is a
// ReplacingMergeTree keyed by (window_id, attempt, seq), so calling it again
// with the same attempt leaves one copy under FINAL; a crash between the two
// inserts leaves rows of an attempt that is never published, and
// published_instructions shows only the attempt the written row names.
// If w.WrittenAt is zero it is set to the current time.
func (c *Client) WriteWindow(ctx context.Context, w Window, rows []Row) error {
	if err := validateWindow("write window", w); err != nil {
		return err
	}
	createdAt := toDT(w.ClosedAt)
	if len(rows) > 0 {
		err := c.insert(ctx, "write window "+w.ID, "synthetic_instructions", syntheticCols,
			"synthetic_instructions:"+w.ID+":"+w.Attempt, func(b driver.Batch) error {
				for _, r := range rows {
					if err := b.Append(RowID(w.ID, r.Seq), w.ID, w.Attempt, w.Group, r.Seq, r.Text, r.Cluster,
						r.GeneratorVersion, r.Epsilon, r.Delta, createdAt); err != nil {
						// Never include r.Text: it is output, but errors end up in logs.
						return err
					}
				}
				return nil
			})
		if err != nil {
			return err
		}
	}
	w.Status = StatusWritten
	w.OutputRows = uint64(len(rows))
	if w.WrittenAt.IsZero() {
		w.WrittenAt = time.Now()
	}
	return c.putWindow(ctx, "mark window "+w.ID+" written", w, "windows:"+w.ID+":written:"+w.Attempt)
}
