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
	// Ranges are the offsets the window read: the records this charge
	// spends on, for composing per record. None (rows charged before
	// ranges were recorded) means every record.
	Ranges []Range
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

var privacyLedgerCols = []string{
	"group_id", "window_id", "attempt", "epsilon", "delta", "mechanism", "params", "partitions",
	"range_topics", "range_partitions", "range_first_offsets", "range_last_offsets", "version",
}

// Charge records ch in the privacy_ledger table before the window trains.
//
// It first reads the group's charges and, when limit.Epsilon > 0 and the
// composed spend with ch would exceed it, returns an error wrapping
// ErrBudgetExceeded (naming the spent, requested and cap values) and writes
// nothing. Otherwise it inserts the charge synchronously, retried on
// transient errors, and returns nil only once the insert is acknowledged; on
// any error the caller must treat the charge as not made and must not train.
//
// Composition: limit.Composer totals the charges (see Composer); the
// connector's composes per privacy unit by RDP, so windows over disjoint
// records cost the worst record's composition, not their sum. With no
// Composer, totals use basic composition, the sum of epsilons and of deltas
// over every charged (window, attempt), which over-counts but never
// under-counts. Either way duplicate rows of one key (retries) count once, at
// their largest epsilon and delta, and a window processed twice (two
// attempts) is charged twice. A key already charged is excluded from "spent"
// when it is charged again, so a retry is not refused.
//
// Race: the check and the insert are not atomic. Replicas charging the same
// group concurrently can all pass the check, so the lifetime cap can be
// exceeded by at most one window per concurrently charging replica. The
// overshoot is recorded, so Spent always reports the true (composed) total.
func (c *Client) Charge(ctx context.Context, ch Charge, limit Cap) error {
	if err := validateCharge(ch); err != nil {
		return err
	}
	l, err := c.ledger(ctx, ch.Group)
	if err != nil {
		return err
	}
	if err := checkCap("privacy ledger on "+c.addr, l, ch, limit); err != nil {
		return err
	}
	parts := ch.Partitions
	if parts == nil {
		parts = []int32{}
	}
	topics, rparts, firsts, lasts := rangeColumns(ch.Ranges)
	// Computed once, so a retried insert writes an identical row.
	version := uint64(time.Now().UnixNano())
	return c.insert(ctx, "charge window "+ch.WindowID+" attempt "+ch.Attempt, "privacy_ledger", privacyLedgerCols, "",
		func(b driver.Batch) error {
			return b.Append(ch.Group, ch.WindowID, ch.Attempt, ch.Epsilon, ch.Delta, ch.Mechanism, ch.Params, parts,
				topics, rparts, firsts, lasts, version)
		})
}

// rangeColumns splits ranges into the ledger's parallel array columns.
func rangeColumns(rs []Range) (topics []string, parts []int32, firsts, lasts []int64) {
	topics, parts = make([]string, len(rs)), make([]int32, len(rs))
	firsts, lasts = make([]int64, len(rs)), make([]int64, len(rs))
	for i, r := range rs {
		topics[i], parts[i], firsts[i], lasts[i] = r.Topic, r.Partition, r.First, r.Last
	}
	return topics, parts, firsts, lasts
}

// Spent returns the group's spend: the number of charged (window, attempt)
// keys, their sum (basic composition) and comp's composed figure (nil comp:
// Basic, so both figures are the sum).
func (c *Client) Spent(ctx context.Context, group string, comp Composer) (Spending, error) {
	l, err := c.ledger(ctx, group)
	if err != nil {
		return Spending{}, err
	}
	return l.spending(comp)
}

// ledger reads every row of the group and merges them per key in Go
// (ledger.add). It does not rely on FINAL (which keeps the highest version,
// not the largest charge) so that neither pending merges nor a conflicting
// duplicate can lower the total.
func (c *Client) ledger(ctx context.Context, group string) (ledger, error) {
	l := ledger{}
	query := "SELECT window_id, attempt, epsilon, delta, mechanism, params, " +
		"range_topics, range_partitions, range_first_offsets, range_last_offsets FROM " + c.table("privacy_ledger") +
		" WHERE group_id = ?"
	err := c.retry(ctx, "read privacy ledger of group "+group, func(ctx context.Context) error {
		clear(l)
		rows, err := c.conn.Query(ctx, query, group)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			ch := Charge{Group: group}
			var topics []string
			var parts []int32
			var firsts, lasts []int64
			if err := rows.Scan(&ch.WindowID, &ch.Attempt, &ch.Epsilon, &ch.Delta, &ch.Mechanism, &ch.Params,
				&topics, &parts, &firsts, &lasts); err != nil {
				return err
			}
			if len(parts) != len(topics) || len(firsts) != len(topics) || len(lasts) != len(topics) {
				return fmt.Errorf("sink: privacy ledger: window %s attempt %s: range columns of unequal lengths", ch.WindowID, ch.Attempt)
			}
			for i := range topics {
				ch.Ranges = append(ch.Ranges, Range{Topic: topics[i], Partition: parts[i], First: firsts[i], Last: lasts[i]})
			}
			l.add(ch)
		}
		return rows.Err()
	})
	return l, err
}

// FileLedger is the local fallback of the privacy ledger: an append-only
// JSON-lines file (mode 0600), one charge per line, fsynced after each
// append. Its Charge and Spent have the semantics of Client.Charge and
// Client.Spent (the same Cap and Composer; a key already present is not
// appended again). Calls are serialised within the process; separate processes must
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
	// Ranges is absent on lines written before ranges were recorded: such
	// a charge covers every record.
	Ranges []fileRange `json:"ranges,omitempty"`
}

type fileRange struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	First     int64  `json:"first_offset"`
	Last      int64  `json:"last_offset"`
}

func (fc fileCharge) charge() Charge {
	ch := Charge{Group: fc.Group, WindowID: fc.WindowID, Attempt: fc.Attempt, Epsilon: fc.Epsilon, Delta: fc.Delta,
		Mechanism: fc.Mechanism, Params: fc.Params, Partitions: fc.Partitions}
	for _, r := range fc.Ranges {
		ch.Ranges = append(ch.Ranges, Range(r))
	}
	return ch
}

// Charge appends ch unless its composed spend would exceed limit (see
// Client.Charge), in which case it returns an error wrapping
// ErrBudgetExceeded and writes nothing. A charge
// whose key is already in the file is not appended again; if the recorded
// epsilon or delta is smaller than ch's, that is an error (the ledger would
// under-count). Any write or fsync error (full disk, read-only directory) is
// returned and the charge counts as not made: the caller must not train.
func (l FileLedger) Charge(ctx context.Context, ch Charge, limit Cap) error {
	if err := validateCharge(ch); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fileLedgerMu.Lock()
	defer fileLedgerMu.Unlock()
	led, err := l.read(ch.Group)
	if err != nil {
		return err
	}
	if prev, ok := led[ch.key()]; ok {
		if prev.Epsilon < ch.Epsilon || prev.Delta < ch.Delta {
			return fmt.Errorf("sink: file ledger %s: window %s attempt %s of group %s already charged epsilon %g delta %g, not %g/%g",
				l.Path, ch.WindowID, ch.Attempt, ch.Group, prev.Epsilon, prev.Delta, ch.Epsilon, ch.Delta)
		}
		return nil
	}
	if err := checkCap("file ledger "+l.Path, led, ch, limit); err != nil {
		return err
	}
	parts := ch.Partitions
	if parts == nil {
		parts = []int32{}
	}
	fc := fileCharge{
		Group: ch.Group, WindowID: ch.WindowID, Attempt: ch.Attempt,
		ChargedAt: time.Now().UTC().Format(time.RFC3339),
		Epsilon:   ch.Epsilon, Delta: ch.Delta, Mechanism: ch.Mechanism, Params: ch.Params, Partitions: parts,
	}
	for _, r := range ch.Ranges {
		fc.Ranges = append(fc.Ranges, fileRange(r))
	}
	line, err := json.Marshal(fc)
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

// Spent returns the group's spend recorded in the file, as Client.Spent.
func (l FileLedger) Spent(ctx context.Context, group string, comp Composer) (Spending, error) {
	if err := ctx.Err(); err != nil {
		return Spending{}, err
	}
	fileLedgerMu.Lock()
	led, err := l.read(group)
	fileLedgerMu.Unlock()
	if err != nil {
		return Spending{}, err
	}
	return led.spending(comp)
}

// read parses the file (missing means empty). A malformed line is an error:
// the ledger refuses to guess rather than under-count.
func (l FileLedger) read(group string) (ledger, error) {
	led := ledger{}
	f, err := os.Open(l.Path)
	if errors.Is(err, os.ErrNotExist) {
		return led, nil
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
				led.add(fc.charge())
			}
		}
		if errors.Is(err, io.EOF) {
			return led, nil
		}
		if err != nil {
			return nil, fmt.Errorf("sink: file ledger %s: read: %w", l.Path, err)
		}
	}
}
