package sink

import (
	"context"
	"sort"
	"time"
)

// readWindows loads windows matching where (a predicate over group_id and
// window_id, valid on both window_ranges and windows) from both tables and
// merges them. windows is read with FINAL, which keeps the highest version
// per window; window_ranges is read without FINAL and aggregated so that
// PlannedAt is the earliest planned_at even if a plan was replayed.
//
// The order of the two reads matters: PlanWindow inserts a window's ranges
// before its windows row, so reading windows first guarantees every window
// found there also has its ranges (and so its PlannedAt) in the second
// read. The other order could return a plan recorded between the reads
// without a PlannedAt, and that plan would wrongly sort as the oldest.
func (c *Client) readWindows(ctx context.Context, what, where string, args []any) ([]Window, error) {
	type key struct{ group, id string }
	windowsQ := "SELECT window_id, group_id, status, owner, lease_until," +
		" topics, partitions, first_offsets, last_offsets," +
		" configured_records, records, dead_letters," +
		" opened_at, closed_at, written_at," +
		" processor, params, output_rows, epsilon, delta, attempt" +
		" FROM " + c.table("windows") + " FINAL WHERE " + where
	rangesQ := "SELECT group_id, window_id, topic, `partition`, first_offset, last_offset, min(planned_at)" +
		" FROM " + c.table("window_ranges") + " WHERE " + where +
		" GROUP BY group_id, window_id, topic, `partition`, first_offset, last_offset"

	var (
		byKey map[key]*Window
		order []key
	)
	err := c.retry(ctx, what+": read windows", func(ctx context.Context) error {
		byKey, order = map[key]*Window{}, nil
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
				&w.ConfiguredRecords, &w.Records, &w.DeadLetters,
				&opened, &closed, &written,
				&w.Processor, &w.Params, &w.OutputRows, &w.Epsilon, &w.Delta, &w.Attempt); err != nil {
				return err
			}
			w.ID, w.Group, w.Status = k.id, k.group, Status(status)
			w.LeaseUntil, w.OpenedAt, w.ClosedAt, w.WrittenAt = fromDT(leaseUntil), fromDT(opened), fromDT(closed), fromDT(written)
			// The copy of the ranges kept on the window row, used only if the
			// window has no range rows (never planned through PlanWindow).
			for i := range topics {
				if i < len(partitions) && i < len(firsts) && i < len(lasts) {
					w.Ranges = append(w.Ranges, Range{Topic: topics[i], Partition: partitions[i], First: firsts[i], Last: lasts[i]})
				}
			}
			byKey[k] = &w
			order = append(order, k)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}

	type ranged struct {
		ranges    []Range
		plannedAt time.Time
	}
	var fromRanges map[key]*ranged
	var rangeOrder []key
	err = c.retry(ctx, what+": read window_ranges", func(ctx context.Context) error {
		fromRanges, rangeOrder = map[key]*ranged{}, nil
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
			rr, ok := fromRanges[k]
			if !ok {
				rr = &ranged{}
				fromRanges[k] = rr
				rangeOrder = append(rangeOrder, k)
			}
			rr.ranges = append(rr.ranges, r)
			if p := fromDT(plannedAt); rr.plannedAt.IsZero() || p.Before(rr.plannedAt) {
				rr.plannedAt = p
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	for _, k := range rangeOrder {
		rr := fromRanges[k]
		w, ok := byKey[k]
		if !ok {
			// Ranges without a window row: the planner died between the two
			// inserts. A planned window with an expired (zero) lease.
			w = &Window{ID: k.id, Group: k.group, Status: StatusPlanned}
			byKey[k] = w
			order = append(order, k)
		}
		w.Ranges, w.PlannedAt = rr.ranges, rr.plannedAt
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
