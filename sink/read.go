package sink

import (
	"context"
	"sort"
	"time"
)

// readWindows loads windows matching where (a predicate over group_id and
// window_id, valid on both window_ranges and windows) from both tables and
// merges them. window_ranges is read without FINAL and aggregated so that
// PlannedAt is the earliest planned_at even if a plan was replayed; windows
// is read with FINAL, which keeps the highest version per window.
func (c *Client) readWindows(ctx context.Context, what, where string, args []any) ([]Window, error) {
	type key struct{ group, id string }
	var (
		byKey map[key]*Window
		order []key
	)
	get := func(k key) *Window {
		w, ok := byKey[k]
		if !ok {
			w = &Window{ID: k.id, Group: k.group, Status: StatusPlanned}
			byKey[k] = w
			order = append(order, k)
		}
		return w
	}

	rangesQ := "SELECT group_id, window_id, topic, `partition`, first_offset, last_offset, min(planned_at)" +
		" FROM " + c.table("window_ranges") + " WHERE " + where +
		" GROUP BY group_id, window_id, topic, `partition`, first_offset, last_offset"
	windowsQ := "SELECT window_id, group_id, status, owner, lease_until," +
		" topics, partitions, first_offsets, last_offsets," +
		" configured_records, records, bytes, dead_letters," +
		" opened_at, closed_at, written_at," +
		" processor, params, output_rows, epsilon, delta" +
		" FROM " + c.table("windows") + " FINAL WHERE " + where

	err := c.retry(ctx, what+": read window_ranges", func(ctx context.Context) error {
		byKey, order = map[key]*Window{}, nil
		rows, err := c.conn.Query(ctx, rangesQ, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				k         key
				r         Range
				plannedAt time.Time
			)
			if err := rows.Scan(&k.group, &k.id, &r.Topic, &r.Partition, &r.First, &r.Last, &plannedAt); err != nil {
				return err
			}
			w := get(k)
			w.Ranges = append(w.Ranges, r)
			if p := fromDT(plannedAt); w.PlannedAt.IsZero() || p.Before(w.PlannedAt) {
				w.PlannedAt = p
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}

	// Snapshot which windows got ranges, so a retried read below does not
	// double-apply anything.
	hadRanges := map[key]bool{}
	for k, w := range byKey {
		hadRanges[k] = len(w.Ranges) > 0
	}
	baseOrder := append([]key(nil), order...)
	err = c.retry(ctx, what+": read windows", func(ctx context.Context) error {
		order = append(order[:0:0], baseOrder...)
		for k := range byKey {
			if !hadRanges[k] {
				delete(byKey, k)
			}
		}
		rows, err := c.conn.Query(ctx, windowsQ, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				k                          key
				status                     string
				w                          Window
				topics                     []string
				partitions                 []int32
				firsts, lasts              []int64
				leaseUntil, opened, closed time.Time
				written                    time.Time
			)
			if err := rows.Scan(&k.id, &k.group, &status, &w.Owner, &leaseUntil,
				&topics, &partitions, &firsts, &lasts,
				&w.ConfiguredRecords, &w.Records, &w.Bytes, &w.DeadLetters,
				&opened, &closed, &written,
				&w.Processor, &w.Params, &w.OutputRows, &w.Epsilon, &w.Delta); err != nil {
				return err
			}
			dst := get(k)
			w.ID, w.Group, w.Status = k.id, k.group, Status(status)
			w.LeaseUntil, w.OpenedAt, w.ClosedAt, w.WrittenAt = fromDT(leaseUntil), fromDT(opened), fromDT(closed), fromDT(written)
			w.PlannedAt = dst.PlannedAt
			w.Ranges = dst.Ranges
			if !hadRanges[k] {
				// No range rows (never planned through PlanWindow): fall back
				// to the copy kept on the window row.
				w.Ranges = nil
				for i := range topics {
					if i < len(partitions) && i < len(firsts) && i < len(lasts) {
						w.Ranges = append(w.Ranges, Range{Topic: topics[i], Partition: partitions[i], First: firsts[i], Last: lasts[i]})
					}
				}
			}
			*dst = w
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}

	out := make([]Window, 0, len(order))
	for _, k := range order {
		w := *byKey[k]
		sort.Slice(w.Ranges, func(i, j int) bool {
			a, b := w.Ranges[i], w.Ranges[j]
			if a.Topic != b.Topic {
				return a.Topic < b.Topic
			}
			if a.Partition != b.Partition {
				return a.Partition < b.Partition
			}
			return a.First < b.First
		})
		out = append(out, w)
	}
	return out, nil
}
