package sink

import (
	"context"
	"time"
)

// WindowSummary is one written window as a report shows it.
type WindowSummary struct {
	ID                  string
	Partitions          []int32
	FirstOffsets        []int64
	LastOffsets         []int64
	Records, OutputRows uint64
	Epsilon, Delta      float64
	Processor           string
	WrittenAt           time.Time
}

// WrittenWindows lists the group's written windows, oldest first.
func (c *Client) WrittenWindows(ctx context.Context, group string) ([]WindowSummary, error) {
	var out []WindowSummary
	query := "SELECT window_id, partitions, first_offsets, last_offsets, records, output_rows, epsilon, delta, processor, written_at FROM " +
		c.table("windows") + " FINAL WHERE group_id = ? AND status = 'written' ORDER BY written_at, window_id"
	err := c.retry(ctx, "list written windows of group "+group, func(ctx context.Context) error {
		out = out[:0]
		rows, err := c.conn.Query(ctx, query, group)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var w WindowSummary
			if err := rows.Scan(&w.ID, &w.Partitions, &w.FirstOffsets, &w.LastOffsets, &w.Records, &w.OutputRows,
				&w.Epsilon, &w.Delta, &w.Processor, &w.WrittenAt); err != nil {
				return err
			}
			out = append(out, w)
		}
		return rows.Err()
	})
	return out, err
}

// PublishedSample is one released synthetic instruction.
type PublishedSample struct {
	WindowID string
	Cluster  int32
	Text     string
}

// SamplePublished returns up to n released instructions of the group,
// spread over windows and clusters (ordered by a hash of the id, so the
// sample is stable and not just the first rows of one window).
func (c *Client) SamplePublished(ctx context.Context, group string, n int) ([]PublishedSample, error) {
	var out []PublishedSample
	query := "SELECT window_id, cluster, text FROM " + c.table("published_instructions") +
		" WHERE group_id = ? ORDER BY cityHash64(id) LIMIT ?"
	err := c.retry(ctx, "sample published instructions of group "+group, func(ctx context.Context) error {
		out = out[:0]
		rows, err := c.conn.Query(ctx, query, group, uint64(n))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s PublishedSample
			if err := rows.Scan(&s.WindowID, &s.Cluster, &s.Text); err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	return out, err
}
