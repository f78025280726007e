package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ErrBudgetExceeded: charging the window would take the stream past its
// lifetime privacy budget. Nothing was charged; the window must not be
// trained or released.
var ErrBudgetExceeded = errors.New("privacy budget exceeded")

// Charge is one entry of the privacy budget ledger: the (epsilon, delta) and
// mechanism parameters of one processing attempt of a window, charged before
// the window trains. (Group, WindowID, Attempt) is its identity: charging the
// same key again is a no-op (a retry), a new attempt of the same window is a
// new charge.
type Charge struct {
	Group, WindowID, Attempt string
	Epsilon, Delta           float64
	// Mechanism names the mechanisms, e.g. "dpsgd+histogram".
	Mechanism string
	// Params is JSON: q, sigma, steps, clip, histogram sigma, accountant.
	Params string
	// Partitions the window covered.
	Partitions []int32
}

func (ch Charge) key() chargeKey { return chargeKey{ch.WindowID, ch.Attempt} }

type chargeKey struct{ window, attempt string }

func validateCharge(ch Charge) error {
	if ch.Group == "" || ch.WindowID == "" || ch.Attempt == "" {
		return errors.New("sink: charge: group, window id and attempt must be set")
	}
	if !(ch.Epsilon >= 0) || !(ch.Delta >= 0) || ch.Delta > 1 {
		return fmt.Errorf("sink: charge window %s attempt %s: invalid epsilon %v / delta %v",
			ch.WindowID, ch.Attempt, ch.Epsilon, ch.Delta)
	}
	return nil
}

// ledgerTotals is the group's spend, per charge key (max over duplicate rows).
type ledgerTotals map[chargeKey][2]float64

func (t ledgerTotals) add(k chargeKey, eps, delta float64) {
	cur, ok := t[k]
	if !ok {
		t[k] = [2]float64{eps, delta}
		return
	}
	t[k] = [2]float64{max(cur[0], eps), max(cur[1], delta)}
}

// sum returns the basic-composition totals, excluding key skip (if set).
func (t ledgerTotals) sum(skip *chargeKey) (eps, delta float64, windows int) {
	for k, v := range t {
		if skip != nil && k == *skip {
			continue
		}
		eps += v[0]
		delta += v[1]
		windows++
	}
	return eps, delta, windows
}

// checkCap refuses ch when the group's spend on other keys plus ch.Epsilon
// exceeds lifetimeCap (> 0). The key being charged is excluded so that
// retrying a charge that already landed is not refused.
func checkCap(where string, t ledgerTotals, ch Charge, lifetimeCap float64) error {
	if lifetimeCap <= 0 {
		return nil
	}
	k := ch.key()
	spent, _, _ := t.sum(&k)
	if spent+ch.Epsilon > lifetimeCap {
		return fmt.Errorf("sink: %s: charge window %s attempt %s of group %s: %w: spent epsilon %g + requested %g > lifetime cap %g",
			where, ch.WindowID, ch.Attempt, ch.Group, ErrBudgetExceeded, spent, ch.Epsilon, lifetimeCap)
	}
	return nil
}

var privacyLedgerCols = []string{
	"group_id", "window_id", "attempt", "epsilon", "delta", "mechanism", "params", "partitions", "version",
}

// Charge records ch in the privacy_ledger table before the window trains.
//
// It first reads the group's spent total and, when lifetimeCap > 0 and
// spent + ch.Epsilon > lifetimeCap, returns an error wrapping
// ErrBudgetExceeded (naming the spent, requested and cap values) and writes
// nothing. Otherwise it inserts the charge synchronously, retried on transient
// errors, and returns nil only once the insert is acknowledged; on any error
// the caller must treat the charge as not made and must not train.
//
// Composition: totals use basic (sequential) composition, the sum of epsilons
// and of deltas over every charged (window, attempt). Windows over disjoint
// records would only cost the max under parallel composition, so this
// over-counts; it is conservative and never under-counts. Duplicate rows of one
// key (retries) count once, at their largest epsilon and delta; a window
// processed twice (two attempts) is charged twice. A key already charged is
// excluded from "spent" when it is charged again, so a retry is not refused.
//
// Race: the check and the insert are not atomic. Replicas charging the same
// group concurrently can all pass the check, so the lifetime cap can be
// exceeded by at most one window per concurrently charging replica. The
// overshoot is recorded, so Spent always reports the true (composed) total.
func (c *Client) Charge(ctx context.Context, ch Charge, lifetimeCap float64) error {
	if err := validateCharge(ch); err != nil {
		return err
	}
	totals, err := c.ledgerTotals(ctx, ch.Group)
	if err != nil {
		return err
	}
	if err := checkCap("privacy ledger on "+c.addr, totals, ch, lifetimeCap); err != nil {
		return err
	}
	parts := ch.Partitions
	if parts == nil {
		parts = []int32{}
	}
	// Computed once, so a retried insert writes an identical row.
	version := uint64(time.Now().UnixNano())
	return c.insert(ctx, "charge window "+ch.WindowID+" attempt "+ch.Attempt, "privacy_ledger", privacyLedgerCols, "",
		func(b driver.Batch) error {
			return b.Append(ch.Group, ch.WindowID, ch.Attempt, ch.Epsilon, ch.Delta, ch.Mechanism, ch.Params, parts, version)
		})
}

// Spent returns the group's total privacy spend under basic composition (see
// Charge): the sum of epsilons and of deltas over charged (window, attempt)
// keys, and the number of such keys.
func (c *Client) Spent(ctx context.Context, group string) (eps, delta float64, windows int, err error) {
	totals, err := c.ledgerTotals(ctx, group)
	if err != nil {
		return 0, 0, 0, err
	}
	eps, delta, windows = totals.sum(nil)
	return eps, delta, windows, nil
}

// ledgerTotals reads one row per key. It groups instead of relying on FINAL
// (which keeps the highest version, not the largest charge) so that neither
// pending merges nor a conflicting duplicate can lower the total.
func (c *Client) ledgerTotals(ctx context.Context, group string) (ledgerTotals, error) {
	totals := ledgerTotals{}
	query := "SELECT window_id, attempt, max(epsilon), max(delta) FROM " + c.table("privacy_ledger") +
		" WHERE group_id = ? GROUP BY window_id, attempt"
	err := c.retry(ctx, "read privacy ledger of group "+group, func(ctx context.Context) error {
		clear(totals)
		rows, err := c.conn.Query(ctx, query, group)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var w, a string
			var e, d float64
			if err := rows.Scan(&w, &a, &e, &d); err != nil {
				return err
			}
			totals.add(chargeKey{w, a}, e, d)
		}
		return rows.Err()
	})
	return totals, err
}

// FileLedger is the local fallback of the privacy ledger: an append-only
// JSON-lines file (mode 0600), one charge per line, fsynced after each
// append. Its Charge and Spent have the semantics of Client.Charge and
// Client.Spent (basic composition; a key already present is not appended
// again). Calls are serialised within the process; separate processes must
// not share one file.
type FileLedger struct{ Path string }

// fileLedgerMu serialises check-and-append across every FileLedger of the
// process.
var fileLedgerMu sync.Mutex

type fileCharge struct {
	Group      string  `json:"group_id"`
	WindowID   string  `json:"window_id"`
	Attempt    string  `json:"attempt"`
	ChargedAt  string  `json:"charged_at"`
	Epsilon    float64 `json:"epsilon"`
	Delta      float64 `json:"delta"`
	Mechanism  string  `json:"mechanism"`
	Params     string  `json:"params"`
	Partitions []int32 `json:"partitions"`
}

// Charge appends ch unless it would exceed lifetimeCap (> 0), in which case it
// returns an error wrapping ErrBudgetExceeded and writes nothing. A charge
// whose key is already in the file is not appended again; if the recorded
// epsilon or delta is smaller than ch's, that is an error (the ledger would
// under-count). Any write or fsync error (full disk, read-only directory) is
// returned and the charge counts as not made: the caller must not train.
func (l FileLedger) Charge(ctx context.Context, ch Charge, lifetimeCap float64) error {
	if err := validateCharge(ch); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fileLedgerMu.Lock()
	defer fileLedgerMu.Unlock()
	totals, err := l.read(ch.Group)
	if err != nil {
		return err
	}
	if prev, ok := totals[ch.key()]; ok {
		if prev[0] < ch.Epsilon || prev[1] < ch.Delta {
			return fmt.Errorf("sink: file ledger %s: window %s attempt %s of group %s already charged epsilon %g delta %g, not %g/%g",
				l.Path, ch.WindowID, ch.Attempt, ch.Group, prev[0], prev[1], ch.Epsilon, ch.Delta)
		}
		return nil
	}
	if err := checkCap("file ledger "+l.Path, totals, ch, lifetimeCap); err != nil {
		return err
	}
	parts := ch.Partitions
	if parts == nil {
		parts = []int32{}
	}
	line, err := json.Marshal(fileCharge{
		Group: ch.Group, WindowID: ch.WindowID, Attempt: ch.Attempt,
		ChargedAt: time.Now().UTC().Format(time.RFC3339),
		Epsilon:   ch.Epsilon, Delta: ch.Delta, Mechanism: ch.Mechanism, Params: ch.Params, Partitions: parts,
	})
	if err != nil {
		return fmt.Errorf("sink: file ledger %s: encode charge: %w", l.Path, err)
	}
	return l.append(append(line, '\n'))
}

// append writes one line and fsyncs it. On failure the file is truncated back
// to its previous size (best effort) so no torn line is left behind.
func (l FileLedger) append(line []byte) (err error) {
	_, statErr := os.Stat(l.Path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sink: file ledger: open: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("sink: file ledger: close: %w", cerr)
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("sink: file ledger: stat: %w", err)
	}
	if st.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			return fmt.Errorf("sink: file ledger: chmod: %w", err)
		}
	}
	size := st.Size()
	if _, err := f.Write(line); err != nil {
		_ = f.Truncate(size)
		return fmt.Errorf("sink: file ledger: append: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Truncate(size)
		return fmt.Errorf("sink: file ledger: fsync: %w", err)
	}
	if created {
		// Make the new directory entry durable too.
		if d, derr := os.Open(filepath.Dir(l.Path)); derr == nil {
			serr := d.Sync()
			_ = d.Close()
			if serr != nil {
				return fmt.Errorf("sink: file ledger: fsync directory: %w", serr)
			}
		}
	}
	return nil
}

// Spent returns the group's total spend recorded in the file, as Client.Spent.
func (l FileLedger) Spent(ctx context.Context, group string) (eps, delta float64, windows int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, 0, err
	}
	fileLedgerMu.Lock()
	totals, err := l.read(group)
	fileLedgerMu.Unlock()
	if err != nil {
		return 0, 0, 0, err
	}
	eps, delta, windows = totals.sum(nil)
	return eps, delta, windows, nil
}

// read parses the file (missing means empty). A malformed line is an error:
// the ledger refuses to guess rather than under-count.
func (l FileLedger) read(group string) (ledgerTotals, error) {
	totals := ledgerTotals{}
	f, err := os.Open(l.Path)
	if errors.Is(err, os.ErrNotExist) {
		return totals, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sink: file ledger: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var fc fileCharge
			if jerr := json.Unmarshal(line, &fc); jerr != nil {
				return nil, fmt.Errorf("sink: file ledger %s line %d: %w", l.Path, n, jerr)
			}
			if fc.Group == group {
				totals.add(chargeKey{fc.WindowID, fc.Attempt}, fc.Epsilon, fc.Delta)
			}
		}
		if errors.Is(err, io.EOF) {
			return totals, nil
		}
		if err != nil {
			return nil, fmt.Errorf("sink: file ledger %s: read: %w", l.Path, err)
		}
	}
}
