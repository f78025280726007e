package sink

// Annotation queues.
//
// Humans annotate released synthetic instructions (published_instructions:
// DP output, safe to read). Two tables hold the queue:
//
//   - annotation_queue (ReplacingMergeTree(version), one row per status
//     transition of an item): queued → claimed → done, or claimed → queued
//     again after a release. Readers take the highest version; a claimed row
//     whose lease_until has passed reads as queued. This is what the views,
//     Progress and Export read, and where Claim looks for candidates.
//   - annotation_events (plain MergeTree, append-only): every claim,
//     completion, release and import, timestamped by the server
//     (event_at DEFAULT now()). Who holds an item is decided from these rows
//     alone, by deriveItem, so the queue rows are only a (possibly briefly
//     stale) summary of it.
//
// # How the claim race is resolved
//
// The same way the window ledger resolves plans (see Plans): append, wait,
// read back, earliest wins. An item goes through rounds 0, 1, 2, ...; in each
// round the earliest claim (smallest event_at, then smallest claim id) is the
// winner and holds the item until event_at + lease. The round ends when the
// holder completes (the item is done for good), releases (the next round
// starts at the release), or the lease expires (the next round starts at
// lease end). A claim counts for a round only if it was made after the round
// began, which a claimer guarantees by reading the state before it claims.
//
// Claim inserts its claim rows, waits Settle (more than the 1 s resolution of
// DateTime), then reads every event of the items back and keeps those it won.
// Any claim that could beat ours has event_at <= ours, so the server stamped
// it before the end of our second, at least Settle-1s before our read: it is
// visible then (assuming an insert commits within that margin, the same
// assumption the window ledger makes, on one server). So every reader that
// reads after the settle wait computes the same winner, and two claimers
// never both hold an item: a loser simply gets fewer items (Claim retries
// once with other candidates). The lease check uses only server times:
// a completion counts if event_at < lease end, a next-round claim only if
// event_at >= lease end, so a late completion and a new claim can never
// both succeed. Clock skew between clients does not matter; the server's
// clock must not jump backwards.
//
// Trade-offs: a claim costs Settle of latency (2 s by default); if a
// claimer dies between winning and writing its claimed queue row, the queue
// row says queued while the events say claimed until the lease ends (Claim
// reads the events, so nobody else gets the item; only the progress view is
// off by that much); candidates are read with one aggregation over
// annotation_queue, fine for the millions of rows annotation queues hold,
// not for billions.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ErrNotLeaseHolder: a completion or release by a claim that does not (or no
// longer) hold the item's lease.
var ErrNotLeaseHolder = errors.New("not the holder of the item's lease")

// Queue statuses, as stored in annotation_queue.status and reported by
// Progress.
const (
	QueueQueued  = "queued"
	QueueClaimed = "claimed"
	QueueDone    = "done"
)

// Actions of annotation_events.
const (
	actionClaim    = "claim"
	actionComplete = "complete"
	actionRelease  = "release"
	actionImport   = "import"
)

// DefaultClaimSettle is how long Claim waits between writing its claims and
// reading them back. It must exceed 1 s (DateTime resolution); the margin
// above 1 s is what a concurrent insert has to become visible.
const DefaultClaimSettle = 2 * time.Second

// doneVersion marks done rows: they outrank every queued or claimed row.
const doneVersion = uint64(1) << 62

// queueVersion orders the rows of one item: later rounds beat earlier ones,
// claimed beats queued within a round, done beats everything.
func queueVersion(status string, round uint32) uint64 {
	v := uint64(round) << 2
	switch status {
	case QueueClaimed:
		v |= 1
	case QueueDone:
		v |= doneVersion | 3
	}
	return v
}

var queueCols = []string{"item_id", "window_id", "cluster", "status", "round", "claim_id", "annotator", "lease_until", "version"}

var eventCols = []string{"item_id", "round", "claim_id", "annotator", "action", "lease_seconds"}

// QueueItem is one item of the annotation queue with its released text.
type QueueItem struct {
	ItemID           string // published_instructions.id
	WindowID         string
	Seq              uint32
	Cluster          int32
	Text             string // synthetic, DP-released text
	GeneratorVersion string
	Epsilon, Delta   float64

	Status     string // queued, claimed or done (an expired lease reads as queued)
	Round      uint32
	ClaimID    string // the claim holding (or that last held) the item
	Annotator  string
	LeaseUntil time.Time
}

// ClaimRequest asks for up to N queued items for one annotator.
type ClaimRequest struct {
	Annotator string
	N         int
	// Lease is how long the items are held; whole seconds, at least
	// Settle + 2s. Items whose lease expires return to the queue.
	Lease time.Duration
	// Settle is the wait before reading claims back (default
	// DefaultClaimSettle; must exceed 1s).
	Settle time.Duration
	// Attempts bounds the claim rounds when concurrent claimers take some
	// of the chosen items (default 2).
	Attempts int
}

// ClaimResult is what a claim won.
type ClaimResult struct {
	ClaimID    string // pass to Complete, Release and ExportItems
	Items      []QueueItem
	LeaseUntil time.Time // server time; the earliest lease end among Items
	// Contended counts items this claim chose but a concurrent claim won.
	Contended int
}

// event is one row of annotation_events.
type event struct {
	ItemID       string
	Round        uint32
	ClaimID      string
	Annotator    string
	Action       string
	LeaseSeconds uint32
	At           time.Time
}

// itemState is an item's state derived from its events.
type itemState struct {
	Status     string // queued, claimed, done
	Round      uint32 // current round (the one a new claim must name)
	ClaimID    string // holder (claimed) or who completed it (done; "" for an import without claim)
	Annotator  string
	LeaseUntil time.Time
	ByImport   bool // done by an import
}

var actionOrder = map[string]int{actionClaim: 0, actionComplete: 1, actionRelease: 2, actionImport: 3}

// deriveItem replays an item's events at server time now. It is a pure
// function of the rows, so every reader that sees the same rows agrees.
func deriveItem(evs []event, now time.Time) itemState {
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if actionOrder[a.Action] != actionOrder[b.Action] {
			return actionOrder[a.Action] < actionOrder[b.Action]
		}
		return a.ClaimID < b.ClaimID
	})
	// An import marks the item done from its first import event on,
	// whoever holds it.
	var imp *event
	for i := range evs {
		if evs[i].Action == actionImport {
			imp = &evs[i]
			break
		}
	}
	importedBefore := func(t time.Time) bool { return imp != nil && imp.At.Before(t) }
	importDone := func(round uint32) itemState {
		return itemState{Status: QueueDone, Round: round, ClaimID: imp.ClaimID, Annotator: imp.Annotator, ByImport: true}
	}

	var round uint32
	var start time.Time
	for range len(evs) + 1 {
		var w *event
		for i := range evs {
			e := &evs[i]
			if e.Action == actionClaim && e.Round == round && !e.At.Before(start) {
				w = e
				break
			}
		}
		if w == nil || (imp != nil && !w.At.Before(imp.At)) {
			if imp != nil {
				return importDone(round)
			}
			return itemState{Status: QueueQueued, Round: round}
		}
		leaseEnd := w.At.Add(time.Duration(w.LeaseSeconds) * time.Second)
		var act *event
		for i := range evs {
			e := &evs[i]
			if (e.Action == actionComplete || e.Action == actionRelease) && e.Round == round &&
				e.ClaimID == w.ClaimID && !e.At.Before(w.At) && e.At.Before(leaseEnd) {
				act = e
				break
			}
		}
		if act != nil {
			if importedBefore(act.At) {
				return importDone(round)
			}
			if act.Action == actionComplete {
				return itemState{Status: QueueDone, Round: round, ClaimID: w.ClaimID, Annotator: w.Annotator, LeaseUntil: leaseEnd}
			}
			round, start = round+1, act.At
			continue
		}
		if importedBefore(leaseEnd) {
			return importDone(round)
		}
		if now.Before(leaseEnd) {
			return itemState{Status: QueueClaimed, Round: round, ClaimID: w.ClaimID, Annotator: w.Annotator, LeaseUntil: leaseEnd}
		}
		round, start = round+1, leaseEnd
	}
	// Unreachable: every round needs its own claim event.
	return itemState{Status: QueueQueued, Round: round}
}

// queueRow is the latest annotation_queue row of an item.
type queueRow struct {
	ItemID, WindowID string
	Cluster          int32
	Status           string // as stored (not adjusted for expiry)
	Round            uint32
	ClaimID          string
	Annotator        string
	LeaseUntil       time.Time
}

const inChunk = 2000

// chunks calls f on ids in slices of at most inChunk.
func chunks(ids []string, f func([]string) error) error {
	for len(ids) > 0 {
		n := min(len(ids), inChunk)
		if err := f(ids[:n]); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// serverNow reads the server clock (DateTime, seconds).
func (c *Client) serverNow(ctx context.Context) (time.Time, error) {
	var now time.Time
	err := c.retry(ctx, "read server time", func(ctx context.Context) error {
		return c.conn.QueryRow(ctx, "SELECT now()").Scan(&now)
	})
	return now.UTC(), err
}

// itemStates derives the state of each id from annotation_events, at the
// server's current time. Ids without events are queued in round 0.
func (c *Client) itemStates(ctx context.Context, ids []string) (map[string]itemState, time.Time, error) {
	now, err := c.serverNow(ctx)
	if err != nil {
		return nil, now, err
	}
	byItem := map[string][]event{}
	err = chunks(ids, func(part []string) error {
		return c.retry(ctx, "read annotation_events", func(ctx context.Context) error {
			for _, id := range part {
				delete(byItem, id)
			}
			rows, err := c.conn.Query(ctx, "SELECT item_id, round, claim_id, annotator, action, lease_seconds, event_at FROM "+
				c.table("annotation_events")+" WHERE has(?, item_id)", part)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var e event
				if err := rows.Scan(&e.ItemID, &e.Round, &e.ClaimID, &e.Annotator, &e.Action, &e.LeaseSeconds, &e.At); err != nil {
					return err
				}
				e.At = e.At.UTC()
				byItem[e.ItemID] = append(byItem[e.ItemID], e)
			}
			return rows.Err()
		})
	})
	if err != nil {
		return nil, now, err
	}
	out := make(map[string]itemState, len(ids))
	for _, id := range ids {
		out[id] = deriveItem(byItem[id], now)
	}
	return out, now, nil
}

const queueLatest = "SELECT item_id, argMax(window_id, version) AS w, argMax(cluster, version) AS cl, argMax(status, version) AS s," +
	" argMax(round, version) AS r, argMax(claim_id, version) AS cid, argMax(annotator, version) AS a, argMax(lease_until, version) AS l" +
	" FROM %s %s GROUP BY item_id"

func scanQueueRows(rows driver.Rows, f func(queueRow)) error {
	defer rows.Close()
	for rows.Next() {
		var q queueRow
		if err := rows.Scan(&q.ItemID, &q.WindowID, &q.Cluster, &q.Status, &q.Round, &q.ClaimID, &q.Annotator, &q.LeaseUntil); err != nil {
			return err
		}
		q.LeaseUntil = fromDT(q.LeaseUntil)
		f(q)
	}
	return rows.Err()
}

// queueRows reads the latest queue row of each id; ids not in the queue are
// absent from the result.
func (c *Client) queueRows(ctx context.Context, ids []string) (map[string]queueRow, error) {
	out := map[string]queueRow{}
	err := chunks(ids, func(part []string) error {
		return c.retry(ctx, "read annotation_queue", func(ctx context.Context) error {
			rows, err := c.conn.Query(ctx, fmt.Sprintf(queueLatest, c.table("annotation_queue"), "WHERE has(?, item_id)"), part)
			if err != nil {
				return err
			}
			return scanQueueRows(rows, func(q queueRow) { out[q.ItemID] = q })
		})
	})
	return out, err
}

// putQueueRows appends one versioned row per item.
func (c *Client) putQueueRows(ctx context.Context, what string, rows []queueRow) error {
	if len(rows) == 0 {
		return nil
	}
	return c.insert(ctx, what, "annotation_queue", queueCols, "", func(b driver.Batch) error {
		for _, q := range rows {
			if err := b.Append(q.ItemID, q.WindowID, q.Cluster, q.Status, q.Round, q.ClaimID, q.Annotator,
				toDT(q.LeaseUntil), queueVersion(q.Status, q.Round)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *Client) putEvents(ctx context.Context, what string, evs []event) error {
	if len(evs) == 0 {
		return nil
	}
	return c.insert(ctx, what, "annotation_events", eventCols, "", func(b driver.Batch) error {
		for _, e := range evs {
			if err := b.Append(e.ItemID, e.Round, e.ClaimID, e.Annotator, e.Action, e.LeaseSeconds); err != nil {
				return err
			}
		}
		return nil
	})
}

// Enqueue adds every published instruction that is not in the queue yet, as
// queued in round 0, and returns how many it added. It reads then inserts
// (18.16 cannot run INSERT ... SELECT through the batch API); two
// concurrent calls may add the same item twice, which is harmless: the rows
// are identical and have version 0, below any later transition. GLOBAL NOT IN:
// in cluster mode both tables are Distributed (on one server it is NOT IN).
func (c *Client) Enqueue(ctx context.Context) (int, error) {
	var rows []queueRow
	query := "SELECT id, window_id, cluster FROM " + c.table("published_instructions") +
		" WHERE id GLOBAL NOT IN (SELECT item_id FROM " + c.table("annotation_queue") + ") ORDER BY window_id, seq"
	err := c.retry(ctx, "enqueue: read published_instructions", func(ctx context.Context) error {
		rows = rows[:0]
		rs, err := c.conn.Query(ctx, query)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			q := queueRow{Status: QueueQueued}
			if err := rs.Scan(&q.ItemID, &q.WindowID, &q.Cluster); err != nil {
				return err
			}
			rows = append(rows, q)
		}
		return rs.Err()
	})
	if err != nil {
		return 0, err
	}
	if err := c.putQueueRows(ctx, "enqueue", rows); err != nil {
		return 0, err
	}
	return len(rows), nil
}

func newClaimID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("sink: claim id: %w", err)
	}
	return "c" + hex.EncodeToString(b), nil
}

// validName accepts annotator names and ids for storage and printing: 1-256
// bytes of printable, non-control UTF-8.
func validName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\uFFFD' || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// Claim takes up to req.N queued items (items whose lease expired count as
// queued) for req.Annotator, race-free across processes; see the top of
// this file. It may return fewer items, or none, when the queue is short or
// concurrent claimers win some of them.
func (c *Client) Claim(ctx context.Context, req ClaimRequest) (ClaimResult, error) {
	if req.Settle == 0 {
		req.Settle = DefaultClaimSettle
	}
	if req.Attempts <= 0 {
		req.Attempts = 2
	}
	switch {
	case !validName(req.Annotator):
		return ClaimResult{}, fmt.Errorf("sink: claim: annotator must be 1-256 printable characters")
	case req.N <= 0:
		return ClaimResult{}, fmt.Errorf("sink: claim: n must be positive, got %d", req.N)
	case req.Settle <= time.Second:
		return ClaimResult{}, fmt.Errorf("sink: claim: settle must exceed 1s (DateTime resolution), got %s", req.Settle)
	case req.Lease < req.Settle+2*time.Second || req.Lease > 365*24*time.Hour:
		return ClaimResult{}, fmt.Errorf("sink: claim: lease must be between settle+2s (%s) and 365 days, got %s", req.Settle+2*time.Second, req.Lease)
	}
	leaseSeconds := uint32((req.Lease + time.Second - 1) / time.Second)
	claimID, err := newClaimID()
	if err != nil {
		return ClaimResult{}, err
	}
	res := ClaimResult{ClaimID: claimID}
	var tried []string
	won := map[string]queueRow{}
	for attempt := 0; attempt < req.Attempts && len(won) < req.N; attempt++ {
		want := req.N - len(won)
		pool, err := c.claimCandidates(ctx, want*4+32, tried)
		if err != nil {
			return res, err
		}
		if len(pool) == 0 {
			break
		}
		ids := make([]string, len(pool))
		for i, q := range pool {
			ids[i] = q.ItemID
		}
		states, _, err := c.itemStates(ctx, ids)
		if err != nil {
			return res, err
		}
		var chosen []queueRow
		for _, q := range pool {
			if states[q.ItemID].Status == QueueQueued {
				chosen = append(chosen, q)
			} else {
				tried = append(tried, q.ItemID) // held or done: skip next time
			}
		}
		// Concurrent claimers read the same oldest candidates; picking at
		// random among them keeps them from all claiming the same few.
		mrand.Shuffle(len(chosen), func(i, j int) { chosen[i], chosen[j] = chosen[j], chosen[i] })
		chosen = chosen[:min(len(chosen), want)]
		for _, q := range chosen {
			tried = append(tried, q.ItemID)
		}
		if len(chosen) == 0 {
			continue
		}
		evs := make([]event, len(chosen))
		chosenIDs := make([]string, len(chosen))
		for i, q := range chosen {
			evs[i] = event{ItemID: q.ItemID, Round: states[q.ItemID].Round, ClaimID: claimID, Annotator: req.Annotator,
				Action: actionClaim, LeaseSeconds: leaseSeconds}
			chosenIDs[i] = q.ItemID
		}
		if err := c.putEvents(ctx, "claim", evs); err != nil {
			return res, err
		}
		select {
		case <-time.After(req.Settle):
		case <-ctx.Done():
			c.releaseAbandoned(claimID, req.Annotator, evs)
			return res, fmt.Errorf("sink: claim: %w", ctx.Err())
		}
		after, _, err := c.itemStates(ctx, chosenIDs)
		if err != nil {
			c.releaseAbandoned(claimID, req.Annotator, evs)
			return res, err
		}
		var rows []queueRow
		for _, q := range chosen {
			st := after[q.ItemID]
			if st.Status != QueueClaimed || st.ClaimID != claimID {
				res.Contended++
				continue
			}
			q.Status, q.Round, q.ClaimID, q.Annotator, q.LeaseUntil = QueueClaimed, st.Round, claimID, req.Annotator, st.LeaseUntil
			rows = append(rows, q)
			won[q.ItemID] = q
		}
		if err := c.putQueueRows(ctx, "claim", rows); err != nil {
			return res, err
		}
	}
	if len(won) == 0 {
		return res, nil
	}
	ids := make([]string, 0, len(won))
	for id := range won {
		ids = append(ids, id)
	}
	items, err := c.withText(ctx, ids, func(id string) (queueRow, bool) { q, ok := won[id]; return q, ok })
	if err != nil {
		return res, err
	}
	res.Items = items
	for _, it := range items {
		if res.LeaseUntil.IsZero() || it.LeaseUntil.Before(res.LeaseUntil) {
			res.LeaseUntil = it.LeaseUntil
		}
	}
	return res, nil
}

// releaseAbandoned gives back, best effort, items a failed Claim may have
// won, so they need not wait for the lease to end. A release by a claim
// that did not win is ignored by deriveItem.
func (c *Client) releaseAbandoned(claimID, annotator string, claims []event) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs := make([]event, len(claims))
	for i, e := range claims {
		evs[i] = event{ItemID: e.ItemID, Round: e.Round, ClaimID: claimID, Annotator: annotator, Action: actionRelease}
	}
	_ = c.putEvents(ctx, "release abandoned claim", evs)
}

// claimCandidates returns up to limit items whose latest queue row is
// queued or claimed with an expired lease, oldest windows first, skipping
// exclude.
func (c *Client) claimCandidates(ctx context.Context, limit int, exclude []string) ([]queueRow, error) {
	where := "WHERE (s = 'queued' OR (s = 'claimed' AND l <= now()))"
	args := []any{}
	if len(exclude) > 0 {
		where += " AND NOT has(?, item_id)"
		args = append(args, exclude)
	}
	query := "SELECT item_id, w, cl, s, r, cid, a, l FROM (" + fmt.Sprintf(queueLatest, c.table("annotation_queue"), "") + ") " +
		where + fmt.Sprintf(" ORDER BY w, item_id LIMIT %d", limit)
	var out []queueRow
	err := c.retry(ctx, "claim: read candidates", func(ctx context.Context) error {
		out = out[:0]
		rows, err := c.conn.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		return scanQueueRows(rows, func(q queueRow) { out = append(out, q) })
	})
	return out, err
}

// withText joins queue rows with their published text, sorted by window and
// seq. Items no longer in published_instructions are dropped.
func (c *Client) withText(ctx context.Context, ids []string, row func(string) (queueRow, bool)) ([]QueueItem, error) {
	var items []QueueItem
	err := chunks(ids, func(part []string) error {
		var got []QueueItem
		err := c.retry(ctx, "read published_instructions", func(ctx context.Context) error {
			got = got[:0]
			rows, err := c.conn.Query(ctx, "SELECT id, window_id, seq, text, cluster, generator_version, epsilon, delta FROM "+
				c.table("published_instructions")+" WHERE has(?, id)", part)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var it QueueItem
				if err := rows.Scan(&it.ItemID, &it.WindowID, &it.Seq, &it.Text, &it.Cluster, &it.GeneratorVersion, &it.Epsilon, &it.Delta); err != nil {
					return err
				}
				got = append(got, it)
			}
			return rows.Err()
		})
		items = append(items, got...)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := items[:0]
	for _, it := range items {
		q, ok := row(it.ItemID)
		if !ok {
			continue
		}
		it.Status, it.Round, it.ClaimID, it.Annotator, it.LeaseUntil = q.Status, q.Round, q.ClaimID, q.Annotator, q.LeaseUntil
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].WindowID != out[j].WindowID {
			return out[i].WindowID < out[j].WindowID
		}
		return out[i].Seq < out[j].Seq
	})
	return out, nil
}

// heldBy returns the items claimID currently holds.
func (c *Client) heldBy(ctx context.Context, claimID string) ([]string, map[string]itemState, error) {
	var ids []string
	err := c.retry(ctx, "read claims", func(ctx context.Context) error {
		ids = ids[:0]
		rows, err := c.conn.Query(ctx, "SELECT DISTINCT item_id FROM "+c.table("annotation_events")+
			" WHERE claim_id = ? AND action = 'claim' ORDER BY item_id", claimID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, nil, err
	}
	states, _, err := c.itemStates(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	held := ids[:0]
	for _, id := range ids {
		if st := states[id]; st.Status == QueueClaimed && st.ClaimID == claimID {
			held = append(held, id)
		}
	}
	return held, states, nil
}

// LeaseResult reports what Complete or Release did per item.
type LeaseResult struct {
	Done    []string          // items completed (Complete) or released (Release)
	Refused map[string]string // item -> why: not claimed, lease expired, held by another claim, already done, not in the queue
}

// Complete marks items done for the claim holding their lease. With no
// itemIDs it completes every item claimID still holds. Items the claim does
// not hold (never claimed, lease expired, taken over, already done) are
// refused; the error then wraps ErrNotLeaseHolder and the result says why
// per item. The completion is an event stamped by the server: it counts only
// if stamped before the lease ends, so it cannot race a new claim.
func (c *Client) Complete(ctx context.Context, claimID string, itemIDs []string) (LeaseResult, error) {
	return c.endLease(ctx, actionComplete, claimID, itemIDs)
}

// Release gives items back to the queue before their lease ends (the next
// round starts at once). Same rules as Complete.
func (c *Client) Release(ctx context.Context, claimID string, itemIDs []string) (LeaseResult, error) {
	return c.endLease(ctx, actionRelease, claimID, itemIDs)
}

func (c *Client) endLease(ctx context.Context, action, claimID string, itemIDs []string) (LeaseResult, error) {
	res := LeaseResult{Refused: map[string]string{}}
	if !validName(claimID) {
		return res, fmt.Errorf("sink: %s: claim id must be 1-256 printable characters", action)
	}
	var states map[string]itemState
	var err error
	if len(itemIDs) == 0 {
		itemIDs, states, err = c.heldBy(ctx, claimID)
	} else {
		itemIDs = dedup(itemIDs)
		states, _, err = c.itemStates(ctx, itemIDs)
	}
	if err != nil {
		return res, err
	}
	rows, err := c.queueRows(ctx, itemIDs)
	if err != nil {
		return res, err
	}
	var evs []event
	var held []string
	for _, id := range itemIDs {
		st := states[id]
		_, queued := rows[id]
		switch {
		case !queued:
			res.Refused[id] = "not in the queue"
		case st.Status == QueueClaimed && st.ClaimID == claimID:
			held = append(held, id)
			evs = append(evs, event{ItemID: id, Round: st.Round, ClaimID: claimID, Annotator: st.Annotator, Action: action})
		default:
			res.Refused[id] = refusal(st, claimID)
		}
	}
	if err := c.putEvents(ctx, action, evs); err != nil {
		return res, err
	}
	after, _, err := c.itemStates(ctx, held)
	if err != nil {
		return res, err
	}
	var out []queueRow
	for _, id := range held {
		st, before := after[id], states[id]
		q := rows[id]
		q.ClaimID, q.Annotator, q.LeaseUntil = claimID, before.Annotator, before.LeaseUntil
		switch {
		case action == actionComplete && st.Status == QueueDone && st.ClaimID == claimID && !st.ByImport:
			q.Status, q.Round = QueueDone, st.Round
		case action == actionRelease && st.Round > before.Round && st.Status != QueueDone:
			q.Status, q.Round, q.LeaseUntil = QueueQueued, before.Round+1, time.Time{}
		default:
			res.Refused[id] = refusal(st, claimID)
			continue
		}
		res.Done = append(res.Done, id)
		out = append(out, q)
	}
	if err := c.putQueueRows(ctx, action, out); err != nil {
		return res, err
	}
	if len(res.Refused) > 0 {
		return res, fmt.Errorf("sink: %s: claim %s: %d of %d items refused: %w", action, claimID, len(res.Refused), len(itemIDs), ErrNotLeaseHolder)
	}
	return res, nil
}

func refusal(st itemState, claimID string) string {
	switch {
	case st.Status == QueueDone:
		return "already done"
	case st.Status == QueueClaimed:
		return "held by another claim"
	case st.Round > 0:
		return "lease expired or released"
	}
	return "not claimed"
}

func dedup(ids []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// ExportFilter selects items for ExportItems.
type ExportFilter struct {
	// ClaimID, when set, selects the items that claim holds now (Status is
	// then ignored).
	ClaimID string
	// Status is queued, claimed, done or all ("" means all). An expired
	// lease counts as queued.
	Status string
}

// ExportItems returns the selected items with their published text, sorted
// by window and seq.
func (c *Client) ExportItems(ctx context.Context, f ExportFilter) ([]QueueItem, error) {
	if f.ClaimID != "" {
		held, states, err := c.heldBy(ctx, f.ClaimID)
		if err != nil {
			return nil, err
		}
		rows, err := c.queueRows(ctx, held)
		if err != nil {
			return nil, err
		}
		return c.withText(ctx, held, func(id string) (queueRow, bool) {
			q, ok := rows[id]
			st := states[id]
			q.Status, q.Round, q.ClaimID, q.Annotator, q.LeaseUntil = st.Status, st.Round, st.ClaimID, st.Annotator, st.LeaseUntil
			return q, ok
		})
	}
	switch f.Status {
	case "", "all", QueueQueued, QueueClaimed, QueueDone:
	default:
		return nil, fmt.Errorf("sink: export: unknown status %q (want queued, claimed, done or all)", f.Status)
	}
	now, err := c.serverNow(ctx)
	if err != nil {
		return nil, err
	}
	rows := map[string]queueRow{}
	var ids []string
	err = c.retry(ctx, "export: read annotation_queue", func(ctx context.Context) error {
		clear(rows)
		ids = ids[:0]
		rs, err := c.conn.Query(ctx, fmt.Sprintf(queueLatest, c.table("annotation_queue"), ""))
		if err != nil {
			return err
		}
		return scanQueueRows(rs, func(q queueRow) {
			if q.Status == QueueClaimed && !now.Before(q.LeaseUntil) {
				q.Status = QueueQueued
			}
			if f.Status == "" || f.Status == "all" || f.Status == q.Status {
				rows[q.ItemID] = q
				ids = append(ids, q.ItemID)
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return c.withText(ctx, ids, func(id string) (queueRow, bool) { q, ok := rows[id]; return q, ok })
}

// QueueProgress counts items by status (annotation_progress view).
type QueueProgress struct {
	Queued, Claimed, Done uint64
}

// Total is the number of items in the queue.
func (p QueueProgress) Total() uint64 { return p.Queued + p.Claimed + p.Done }

// Progress reads the annotation_progress view.
func (c *Client) Progress(ctx context.Context) (QueueProgress, error) {
	var p QueueProgress
	err := c.retry(ctx, "read annotation_progress", func(ctx context.Context) error {
		p = QueueProgress{}
		rows, err := c.conn.Query(ctx, "SELECT status, items FROM "+c.table("annotation_progress"))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			var n uint64
			if err := rows.Scan(&s, &n); err != nil {
				return err
			}
			switch s {
			case QueueQueued:
				p.Queued += n
			case QueueClaimed:
				p.Claimed += n
			case QueueDone:
				p.Done += n
			}
		}
		return rows.Err()
	})
	return p, err
}

// ImportResult reports an ImportAnnotations call.
type ImportResult struct {
	Annotations int // rows written (re-imports collapse under FINAL)
	Items       int // distinct items annotated
	NewlyDone   int // items marked done by this import
}

// ImportAnnotations stores annotations (see DecodeLabelStudio, DecodeJSONL)
// in the annotations table and marks their items done. Every item must be in
// annotation_queue, or nothing is written; the error then names the
// position in the file, never its text. Re-importing the same annotations
// is a no-op under FINAL: rows are keyed by (item_id, annotation_id).
//
// An imported annotation completes its item whoever holds the lease: the
// work is done, and a lease only prevents two people working at once. Its
// holder's later Complete is refused as "already done".
func (c *Client) ImportAnnotations(ctx context.Context, source string, anns []Annotation) (ImportResult, error) {
	var res ImportResult
	if len(anns) == 0 {
		return res, nil
	}
	var ids []string
	seen := map[string]bool{}
	for _, a := range anns {
		if !seen[a.ItemID] {
			seen[a.ItemID] = true
			ids = append(ids, a.ItemID)
		}
	}
	rows, err := c.queueRows(ctx, ids)
	if err != nil {
		return res, err
	}
	missing, first := 0, ""
	for _, a := range anns {
		if _, ok := rows[a.ItemID]; !ok {
			if missing == 0 {
				first = a.Pos
			}
			missing++
		}
	}
	if missing > 0 {
		return res, fmt.Errorf("sink: import: %d annotations refer to items that are not in annotation_queue (first: %s): %w",
			missing, first, ErrBadImport)
	}
	err = c.insert(ctx, "import annotations", "annotations",
		[]string{"item_id", "annotation_id", "annotator", "label", "claim_id", "source"}, "",
		func(b driver.Batch) error {
			for _, a := range anns {
				if err := b.Append(a.ItemID, a.AnnotationID, a.Annotator, a.Label, a.ClaimID, source); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		return res, err
	}
	res.Annotations, res.Items = len(anns), len(ids)

	states, _, err := c.itemStates(ctx, ids)
	if err != nil {
		return res, err
	}
	first2 := map[string]Annotation{}
	for _, a := range anns {
		if _, ok := first2[a.ItemID]; !ok {
			first2[a.ItemID] = a
		}
	}
	var evs []event
	var done []queueRow
	for _, id := range ids {
		st := states[id]
		if st.Status == QueueDone {
			continue
		}
		a := first2[id]
		evs = append(evs, event{ItemID: id, Round: st.Round, ClaimID: a.ClaimID, Annotator: a.Annotator, Action: actionImport})
		q := rows[id]
		q.Status, q.Round, q.ClaimID, q.Annotator, q.LeaseUntil = QueueDone, st.Round, a.ClaimID, a.Annotator, time.Time{}
		done = append(done, q)
	}
	if err := c.putEvents(ctx, "import: mark done", evs); err != nil {
		return res, err
	}
	if err := c.putQueueRows(ctx, "import: mark done", done); err != nil {
		return res, err
	}
	res.NewlyDone = len(done)
	return res, nil
}

// RefusalLines renders the refusals as "item: reason", sorted.
func (r LeaseResult) RefusalLines() []string {
	lines := make([]string, 0, len(r.Refused))
	for id, why := range r.Refused {
		lines = append(lines, id+": "+why)
	}
	sort.Strings(lines)
	return lines
}
