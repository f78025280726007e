package sink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// budgetLedger is what Client and FileLedger have in common.
type budgetLedger interface {
	Charge(ctx context.Context, ch Charge, limit Cap) error
	Spent(ctx context.Context, group string, comp Composer) (Spending, error)
}

func testCharge(window, attempt string, eps float64) Charge {
	return Charge{
		Group: "g1", WindowID: window, Attempt: attempt,
		Epsilon: eps, Delta: 1e-6,
		Mechanism:  "dpsgd+histogram",
		Params:     `{"q":0.01,"sigma":1.1,"steps":100,"clip":1,"histogram_sigma":4,"accountant":"rdp"}`,
		Partitions: []int32{0, 2},
		Ranges:     []Range{{Topic: "t", Partition: 0, First: 0, Last: 9}, {Topic: "t", Partition: 2, First: 0, Last: 9}},
	}
}

// rangedCharge is testCharge over offsets first..last of partition 0 of
// topic t; no offsets at all (first > last) leaves it without ranges.
func rangedCharge(window, attempt string, eps float64, first, last int64) Charge {
	ch := testCharge(window, attempt, eps)
	ch.Partitions, ch.Ranges = []int32{0}, nil
	if first <= last {
		ch.Ranges = []Range{{Topic: "t", Partition: 0, First: first, Last: last}}
	}
	return ch
}

// perRecord is a Composer for these tests that depends on the ranges the
// ledger stores, unlike Basic: each record's spend is the sum of the
// epsilons of the charges that cover it (every charge without ranges
// covers every record), and the total is the worst record's, among the
// records next covers when next is set. Records are offsets 0..99 of the
// partitions named, plus one no range covers.
type perRecord struct{}

func (perRecord) Compose(charges []Charge, next *Charge) (Total, error) {
	all := slices.Clone(charges)
	if next != nil {
		all = append(all, *next)
	}
	covers := func(ch Charge, r Range) bool {
		return len(ch.Ranges) == 0 || slices.ContainsFunc(ch.Ranges, func(cr Range) bool {
			return cr.Topic == r.Topic && cr.Partition == r.Partition && cr.First <= r.First && r.First <= cr.Last
		})
	}
	records := []Range{{Topic: "elsewhere"}}
	for _, ch := range all {
		for _, r := range ch.Ranges {
			for off := int64(0); off < 100; off++ {
				records = append(records, Range{Topic: r.Topic, Partition: r.Partition, First: off})
			}
		}
	}
	var t Total
	for _, rec := range records {
		if next != nil && !covers(*next, rec) {
			continue
		}
		var eps, delta float64
		for _, ch := range all {
			if covers(ch, rec) {
				eps, delta = eps+ch.Epsilon, delta+ch.Delta
			}
		}
		if eps > t.Epsilon {
			t = Total{Epsilon: eps, Unit: fmt.Sprintf("record %s[%d]@%d", rec.Topic, rec.Partition, rec.First)}
		}
		t.Delta = max(t.Delta, delta)
	}
	return t, nil
}

func testBudgetLedger(t *testing.T, newLedger func(t *testing.T) budgetLedger) {
	t.Helper()
	type step struct {
		ch      Charge
		cap     float64
		refused bool
	}
	tests := []struct {
		name string
		// comp composes, for the cap and for Spent (nil: Basic).
		comp  Composer
		steps []step
		// composed is Spent's composed epsilon; eps, delta and windows are
		// the summed figures.
		composed, eps, delta float64
		windows              int
	}{
		{"no cap", nil, []step{{ch: testCharge("w1", "a1", 1)}, {ch: testCharge("w2", "a1", 2)}}, 3, 3, 2e-6, 2},
		{"within cap", nil, []step{{ch: testCharge("w1", "a1", 1), cap: 2}, {ch: testCharge("w2", "a1", 1), cap: 2}}, 2, 2, 2e-6, 2},
		{"cap refusal writes nothing", nil, []step{
			{ch: testCharge("w1", "a1", 1.5), cap: 2},
			{ch: testCharge("w2", "a1", 1), cap: 2, refused: true},
			{ch: testCharge("w3", "a1", 0.5), cap: 2},
		}, 2, 2, 2e-6, 2},
		{"first charge over cap", nil, []step{{ch: testCharge("w1", "a1", 3), cap: 2, refused: true}}, 0, 0, 0, 0},
		{"idempotent retry", nil, []step{
			{ch: testCharge("w1", "a1", 1.5), cap: 2},
			{ch: testCharge("w1", "a1", 1.5), cap: 2},
			{ch: testCharge("w1", "a1", 1.5)},
		}, 1.5, 1.5, 1e-6, 1},
		{"two attempts charged twice", nil, []step{
			{ch: testCharge("w1", "a1", 1)},
			{ch: testCharge("w1", "a2", 1)},
			{ch: testCharge("w1", "a3", 1), cap: 2.5, refused: true},
		}, 2, 2, 2e-6, 2},
		{"other group not counted", nil, []step{
			{ch: func() Charge { c := testCharge("w1", "a1", 5); c.Group = "g2"; return c }()},
			{ch: testCharge("w1", "a1", 1), cap: 2},
		}, 1, 1, 1e-6, 1},
		// With a composer the cap sees the composed figure, not the sum.
		{"composer: disjoint windows pass a cap their sum passes", perRecord{}, []step{
			{ch: rangedCharge("w1", "a1", 1.5, 0, 9), cap: 2},
			{ch: rangedCharge("w2", "a1", 1.5, 10, 19), cap: 2},
		}, 1.5, 3, 2e-6, 2},
		{"composer: an overlapping recut is refused", perRecord{}, []step{
			{ch: rangedCharge("w1", "a1", 1.5, 0, 9), cap: 2},
			{ch: rangedCharge("w2", "a1", 1, 5, 14), cap: 2, refused: true},
			{ch: rangedCharge("w3", "a1", 0.5, 5, 14), cap: 2},
		}, 2, 2, 2e-6, 2},
		{"composer: composed exactly at the cap is allowed", perRecord{}, []step{
			{ch: rangedCharge("w1", "a1", 1.5, 0, 9), cap: 2},
			{ch: rangedCharge("w1", "a2", 0.5, 0, 9), cap: 2},
		}, 2, 2, 2e-6, 2},
		{"composer: retry of a landed key is not refused", perRecord{}, []step{
			{ch: rangedCharge("w1", "a1", 1.5, 0, 9), cap: 2},
			{ch: rangedCharge("w2", "a1", 0.5, 0, 9), cap: 2},
			{ch: rangedCharge("w2", "a1", 0.5, 0, 9), cap: 2},
		}, 2, 2, 2e-6, 2},
		{"composer: a charge without ranges covers every record", perRecord{}, []step{
			{ch: rangedCharge("w0", "a1", 1, 1, 0)},
			{ch: rangedCharge("w1", "a1", 1.5, 50, 59), cap: 2, refused: true},
			{ch: rangedCharge("w2", "a1", 1, 60, 69), cap: 2},
		}, 2, 2, 2e-6, 2},
		{"composer: only the records the charge covers count", perRecord{}, []step{
			{ch: rangedCharge("w1", "a1", 3, 0, 9)},
			{ch: rangedCharge("w2", "a1", 1, 10, 19), cap: 2},
			{ch: rangedCharge("w3", "a1", 1, 5, 14), cap: 2, refused: true},
		}, 3, 4, 2e-6, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger(t)
			ctx := testCtx(t)
			for i, s := range tt.steps {
				err := l.Charge(ctx, s.ch, Cap{Epsilon: s.cap, Composer: tt.comp})
				switch {
				case s.refused && !errors.Is(err, ErrBudgetExceeded):
					t.Fatalf("step %d: err = %v, want ErrBudgetExceeded", i, err)
				case s.refused:
					msg := err.Error()
					for _, want := range []string{"spent", "requested", "cap", "compose"} {
						if !strings.Contains(msg, want) {
							t.Errorf("step %d: error %q does not name %s", i, msg, want)
						}
					}
				case err != nil:
					t.Fatalf("step %d: %v", i, err)
				}
			}
			got, err := l.Spent(ctx, "g1", tt.comp)
			if err != nil {
				t.Fatal(err)
			}
			if !approx(got.Composed.Epsilon, tt.composed) || !approx(got.Summed.Epsilon, tt.eps) ||
				!approx(got.Summed.Delta, tt.delta) || got.Attempts != tt.windows {
				t.Errorf("Spent = %+v; want composed %g, summed %g, %g, %d", got, tt.composed, tt.eps, tt.delta, tt.windows)
			}
			if tt.comp == nil && got.Composed != got.Summed {
				t.Errorf("Spent without a composer: composed %+v != summed %+v", got.Composed, got.Summed)
			}
		})
	}
}

// capture is a Composer that records the charges it is given.
type capture struct{ seen *[]Charge }

func (c capture) Compose(charges []Charge, next *Charge) (Total, error) {
	*c.seen = slices.Clone(charges)
	return Basic{}.Compose(charges, next)
}

// testLedgerRoundTrip: the composer gets every charge as it was made
// (ranges, mechanism and params included; a charge without ranges comes
// back without), once per key, in key order; a composer's error is the
// charge's error, and nothing is charged.
func testLedgerRoundTrip(t *testing.T, newLedger func(t *testing.T) budgetLedger) {
	t.Helper()
	l := newLedger(t)
	ctx := testCtx(t)
	made := []Charge{testCharge("w1", "a1", 1), rangedCharge("w2", "a1", 2, 1, 0), rangedCharge("w3", "a1", 0.5, 3, 7)}
	for _, ch := range append(made, made[0]) {
		if err := l.Charge(ctx, ch, Cap{}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []Charge
	if _, err := l.Spent(ctx, "g1", capture{&seen}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(made) {
		t.Fatalf("composer saw %d charges, want %d: %+v", len(seen), len(made), seen)
	}
	for i, want := range made {
		got := seen[i]
		got.Partitions, want.Partitions = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("charge %d read back as\n%+v\nwant\n%+v", i, got, want)
		}
	}
	boom := errors.New("boom")
	err := l.Charge(ctx, testCharge("w4", "a1", 1), Cap{Epsilon: 10, Composer: failing{boom}})
	if !errors.Is(err, boom) || errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("charge with a failing composer: %v", err)
	}
	if sp, err := l.Spent(ctx, "g1", nil); err != nil || sp.Attempts != len(made) {
		t.Errorf("after the failed charge: %+v, %v", sp, err)
	}
}

type failing struct{ err error }

func (f failing) Compose([]Charge, *Charge) (Total, error) { return Total{}, f.err }

func approx(a, b float64) bool {
	d := a - b
	return d < 1e-12 && d > -1e-12
}

func TestFileLedgerBudget(t *testing.T) {
	testBudgetLedger(t, func(t *testing.T) budgetLedger {
		return FileLedger{Path: filepath.Join(t.TempDir(), "ledger.jsonl")}
	})
}

func TestClickHouseLedgerBudget(t *testing.T) {
	testBudgetLedger(t, func(t *testing.T) budgetLedger { return newTestDB(t, true) })
}

func TestFileLedgerRoundTrip(t *testing.T) {
	testLedgerRoundTrip(t, func(t *testing.T) budgetLedger {
		return FileLedger{Path: filepath.Join(t.TempDir(), "ledger.jsonl")}
	})
}

func TestClickHouseLedgerRoundTrip(t *testing.T) {
	testLedgerRoundTrip(t, func(t *testing.T) budgetLedger { return newTestDB(t, true) })
}

// A retried insert leaves one row under FINAL; two attempts leave two.
func TestClickHouseLedgerRows(t *testing.T) {
	c := newTestDB(t, true)
	ctx := testCtx(t)
	for _, ch := range []Charge{testCharge("w1", "a1", 1), testCharge("w1", "a1", 1), testCharge("w1", "a2", 1)} {
		if err := c.Charge(ctx, ch, Cap{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, c, "SELECT count() FROM "+c.table("privacy_ledger")+" FINAL"); n != 2 {
		t.Errorf("rows under FINAL = %d, want 2", n)
	}
	var parts []int32
	var mech string
	if err := c.Conn().QueryRow(ctx, "SELECT partitions, mechanism FROM "+c.table("privacy_ledger")+" WHERE attempt = 'a2'").Scan(&parts, &mech); err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[1] != 2 || mech != "dpsgd+histogram" {
		t.Errorf("row = %v %q", parts, mech)
	}
}

func TestFileLedgerFile(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l := FileLedger{Path: path}
	if err := l.Charge(ctx, testCharge("w1", "a1", 1), Cap{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Charge(ctx, testCharge("w1", "a1", 1), Cap{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Charge(ctx, testCharge("w1", "a2", 1), Cap{}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Errorf("lines = %d, want 2:\n%s", n, b)
	}
	// Refusal appends nothing.
	if err := l.Charge(ctx, testCharge("w2", "a1", 1), Cap{Epsilon: 2.5}); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("err = %v, want ErrBudgetExceeded", err)
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Errorf("refused charge changed the file")
	}
	// Re-charging a key with a larger epsilon would under-count: refused.
	if err := l.Charge(ctx, testCharge("w1", "a1", 2), Cap{}); err == nil {
		t.Errorf("conflicting re-charge accepted")
	}
}

// An unwritable location is an error (and nothing counts as charged). As
// root, directory permissions are ignored, so that case is skipped.
func TestFileLedgerUnwritable(t *testing.T) {
	t.Run("parent is a file", func(t *testing.T) {
		parent := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(parent, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		l := FileLedger{Path: filepath.Join(parent, "ledger.jsonl")}
		if err := l.Charge(testCtx(t), testCharge("w1", "a1", 1), Cap{}); err == nil {
			t.Fatal("charge under a regular file succeeded")
		}
	})
	t.Run("read-only directory", testFileLedgerReadOnlyDir)
}

func testFileLedgerReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	l := FileLedger{Path: filepath.Join(dir, "ledger.jsonl")}
	if err := l.Charge(testCtx(t), testCharge("w1", "a1", 1), Cap{}); err == nil {
		t.Fatal("charge in a read-only directory succeeded")
	}
	if sp, err := l.Spent(testCtx(t), "g1", nil); err != nil || sp.Summed.Epsilon != 0 || sp.Attempts != 0 {
		t.Errorf("Spent = %+v, %v; want nothing charged", sp, err)
	}
}

func TestChargeValidation(t *testing.T) {
	l := FileLedger{Path: filepath.Join(t.TempDir(), "l")}
	for _, ch := range []Charge{{}, {Group: "g", WindowID: "w", Attempt: "a", Epsilon: -1}} {
		if err := l.Charge(testCtx(t), ch, Cap{}); err == nil {
			t.Errorf("Charge(%+v) accepted", ch)
		}
	}
}
