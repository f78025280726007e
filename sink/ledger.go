package sink

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

var windowRangeCols = []string{"group_id", "topic", "partition", "first_offset", "last_offset", "window_id"}

// windowCols is the insert column list of the windows table; updated_at is
// left to the server default.
var windowCols = []string{
	"window_id", "group_id", "status", "version", "owner", "lease_until",
	"topics", "partitions", "first_offsets", "last_offsets",
	"configured_records", "records", "dead_letters",
	"opened_at", "closed_at", "written_at",
	"processor", "params", "output_rows", "epsilon", "delta", "attempt",
}

func validateWindow(op string, w Window) error {
	if w.ID == "" || w.Group == "" {
		return fmt.Errorf("sink: %s: window id and group must be set", op)
	}
	for _, r := range w.Ranges {
		if r.Last < r.First {
			return fmt.Errorf("sink: %s window %s: range %s/%d has last offset %d < first %d",
				op, w.ID, r.Topic, r.Partition, r.Last, r.First)
		}
	}
	return nil
}

// PlanWindow durably records a window plan: first one immutable row per range
// (planned_at assigned by the server), then the window row with status
// planned. Both inserts are synchronous; once it returns nil, every client
// sees the plan. Replaying it is harmless.
func (c *Client) PlanWindow(ctx context.Context, w Window) error {
	if err := validateWindow("plan window", w); err != nil {
		return err
	}
	if len(w.Ranges) == 0 {
		return fmt.Errorf("sink: plan window %s: no ranges", w.ID)
	}
	err := c.insert(ctx, "plan window "+w.ID, "window_ranges", windowRangeCols, "", func(b driver.Batch) error {
		for _, r := range w.Ranges {
			if err := b.Append(w.Group, r.Topic, r.Partition, r.First, r.Last, w.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.Status = StatusPlanned
	return c.putWindow(ctx, "plan window "+w.ID, w, "")
}

// RenewLease records that owner holds the (still planned) window until
// `until`. It is a new planned row with a later version; it can never
// override a written or abandoned window.
func (c *Client) RenewLease(ctx context.Context, w Window, owner string, until time.Time) error {
	if err := validateWindow("renew lease", w); err != nil {
		return err
	}
	w.Status = StatusPlanned
	w.Owner = owner
	w.LeaseUntil = until
	return c.putWindow(ctx, "renew lease of window "+w.ID, w, "")
}

// Abandon marks the window abandoned: its ranges must be planned again by a
// new window. Only a written row outranks it.
func (c *Client) Abandon(ctx context.Context, w Window) error {
	if err := validateWindow("abandon", w); err != nil {
		return err
	}
	w.Status = StatusAbandoned
	return c.putWindow(ctx, "abandon window "+w.ID, w, "")
}

// putWindow inserts one versioned windows row. The version is computed once,
// outside the retry loop, so a retried insert writes an identical row.
func (c *Client) putWindow(ctx context.Context, what string, w Window, dedupToken string) error {
	version := c.nextVersion(w.Status)
	n := len(w.Ranges)
	topics := make([]string, n)
	partitions := make([]int32, n)
	firsts := make([]int64, n)
	lasts := make([]int64, n)
	for i, r := range w.Ranges {
		topics[i], partitions[i], firsts[i], lasts[i] = r.Topic, r.Partition, r.First, r.Last
	}
	return c.insert(ctx, what, "windows", windowCols, dedupToken, func(b driver.Batch) error {
		return b.Append(
			w.ID, w.Group, string(w.Status), version, w.Owner, toDT(w.LeaseUntil),
			topics, partitions, firsts, lasts,
			w.ConfiguredRecords, w.Records, w.DeadLetters,
			toDT(w.OpenedAt), toDT(w.ClosedAt), toDT(w.WrittenAt),
			w.Processor, w.Params, w.OutputRows, w.Epsilon, w.Delta, w.Attempt,
		)
	})
}

// Plans returns every window of group with a range on topic/partition whose
// last offset is >= fromOffset, with its latest status, all its ranges and
// PlannedAt. Windows are sorted by their first offset on that partition, then
// PlannedAt, then ID, so concurrent overlapping plans resolve the same way
// for every reader. A window whose range rows exist but whose window row does
// not (planner died between the two inserts) is reported as planned with an
// expired (zero) lease.
func (c *Client) Plans(ctx context.Context, group, topic string, partition int32, fromOffset int64) ([]Window, error) {
	// GLOBAL: in cluster mode both tables are Distributed (on one server it
	// is a plain IN).
	sub := "SELECT window_id FROM " + c.table("window_ranges") +
		" WHERE group_id = ? AND topic = ? AND `partition` = ? AND last_offset >= ?"
	subArgs := []any{group, topic, partition, fromOffset}
	ws, err := c.readWindows(ctx, "plans", "group_id = ? AND window_id GLOBAL IN ("+sub+")", append([]any{group}, subArgs...))
	if err != nil {
		return nil, err
	}
	firstOn := func(w Window) int64 {
		first := int64(-1)
		for _, r := range w.Ranges {
			if r.Topic == topic && r.Partition == partition && (first < 0 || r.First < first) {
				first = r.First
			}
		}
		return first
	}
	sort.SliceStable(ws, func(i, j int) bool {
		fi, fj := firstOn(ws[i]), firstOn(ws[j])
		if fi != fj {
			return fi < fj
		}
		if !ws[i].PlannedAt.Equal(ws[j].PlannedAt) {
			return ws[i].PlannedAt.Before(ws[j].PlannedAt)
		}
		return ws[i].ID < ws[j].ID
	})
	return ws, nil
}

// Window returns one window by id, with its latest status.
func (c *Client) Window(ctx context.Context, id string) (Window, bool, error) {
	ws, err := c.readWindows(ctx, "window "+id, "window_id = ?", []any{id})
	if err != nil || len(ws) == 0 {
		return Window{}, false, err
	}
	if len(ws) > 1 {
		return Window{}, false, fmt.Errorf("sink: window %s: id is used by %d groups", id, len(ws))
	}
	return ws[0], true, nil
}
