package sink

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// budgetLedger is what Client and FileLedger have in common.
type budgetLedger interface {
	Charge(ctx context.Context, ch Charge, lifetimeCap float64) error
	Spent(ctx context.Context, group string) (eps, delta float64, windows int, err error)
}

func testCharge(window, attempt string, eps float64) Charge {
	return Charge{
		Group: "g1", WindowID: window, Attempt: attempt,
		Epsilon: eps, Delta: 1e-6,
		Mechanism:  "dpsgd+histogram",
		Params:     `{"q":0.01,"sigma":1.1,"steps":100,"clip":1,"histogram_sigma":4,"accountant":"rdp"}`,
		Partitions: []int32{0, 2},
	}
}

func testBudgetLedger(t *testing.T, newLedger func(t *testing.T) budgetLedger) {
	type step struct {
		ch      Charge
		cap     float64
		refused bool
	}
	tests := []struct {
		name    string
		steps   []step
		eps     float64
		delta   float64
		windows int
	}{
		{"no cap", []step{{ch: testCharge("w1", "a1", 1)}, {ch: testCharge("w2", "a1", 2)}}, 3, 2e-6, 2},
		{"within cap", []step{{ch: testCharge("w1", "a1", 1), cap: 2}, {ch: testCharge("w2", "a1", 1), cap: 2}}, 2, 2e-6, 2},
		{"cap refusal writes nothing", []step{
			{ch: testCharge("w1", "a1", 1.5), cap: 2},
			{ch: testCharge("w2", "a1", 1), cap: 2, refused: true},
			{ch: testCharge("w3", "a1", 0.5), cap: 2},
		}, 2, 2e-6, 2},
		{"first charge over cap", []step{{ch: testCharge("w1", "a1", 3), cap: 2, refused: true}}, 0, 0, 0},
		{"idempotent retry", []step{
			{ch: testCharge("w1", "a1", 1.5), cap: 2},
			{ch: testCharge("w1", "a1", 1.5), cap: 2},
			{ch: testCharge("w1", "a1", 1.5)},
		}, 1.5, 1e-6, 1},
		{"two attempts charged twice", []step{
			{ch: testCharge("w1", "a1", 1)},
			{ch: testCharge("w1", "a2", 1)},
			{ch: testCharge("w1", "a3", 1), cap: 2.5, refused: true},
		}, 2, 2e-6, 2},
		{"other group not counted", []step{
			{ch: func() Charge { c := testCharge("w1", "a1", 5); c.Group = "g2"; return c }()},
			{ch: testCharge("w1", "a1", 1), cap: 2},
		}, 1, 1e-6, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger(t)
			ctx := testCtx(t)
			for i, s := range tt.steps {
				err := l.Charge(ctx, s.ch, s.cap)
				switch {
				case s.refused && !errors.Is(err, ErrBudgetExceeded):
					t.Fatalf("step %d: err = %v, want ErrBudgetExceeded", i, err)
				case s.refused:
					msg := err.Error()
					for _, want := range []string{"spent", "requested", "cap"} {
						if !strings.Contains(msg, want) {
							t.Errorf("step %d: error %q does not name %s", i, msg, want)
						}
					}
				case err != nil:
					t.Fatalf("step %d: %v", i, err)
				}
			}
			eps, delta, windows, err := l.Spent(ctx, "g1")
			if err != nil {
				t.Fatal(err)
			}
			if !approx(eps, tt.eps) || !approx(delta, tt.delta) || windows != tt.windows {
				t.Errorf("Spent = %g, %g, %d; want %g, %g, %d", eps, delta, windows, tt.eps, tt.delta, tt.windows)
			}
		})
	}
}

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

// A retried insert leaves one row under FINAL; two attempts leave two.
func TestClickHouseLedgerRows(t *testing.T) {
	c := newTestDB(t, true)
	ctx := testCtx(t)
	for _, ch := range []Charge{testCharge("w1", "a1", 1), testCharge("w1", "a1", 1), testCharge("w1", "a2", 1)} {
		if err := c.Charge(ctx, ch, 0); err != nil {
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
	if err := l.Charge(ctx, testCharge("w1", "a1", 1), 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Charge(ctx, testCharge("w1", "a1", 1), 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Charge(ctx, testCharge("w1", "a2", 1), 0); err != nil {
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
	if err := l.Charge(ctx, testCharge("w2", "a1", 1), 2.5); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("err = %v, want ErrBudgetExceeded", err)
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Errorf("refused charge changed the file")
	}
	// Re-charging a key with a larger epsilon would under-count: refused.
	if err := l.Charge(ctx, testCharge("w1", "a1", 2), 0); err == nil {
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
		if err := l.Charge(testCtx(t), testCharge("w1", "a1", 1), 0); err == nil {
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
	if err := l.Charge(testCtx(t), testCharge("w1", "a1", 1), 0); err == nil {
		t.Fatal("charge in a read-only directory succeeded")
	}
	if eps, _, n, err := l.Spent(testCtx(t), "g1"); err != nil || eps != 0 || n != 0 {
		t.Errorf("Spent = %g, %d, %v; want nothing charged", eps, n, err)
	}
}

func TestChargeValidation(t *testing.T) {
	l := FileLedger{Path: filepath.Join(t.TempDir(), "l")}
	for _, ch := range []Charge{{}, {Group: "g", WindowID: "w", Attempt: "a", Epsilon: -1}} {
		if err := l.Charge(testCtx(t), ch, 0); err == nil {
			t.Errorf("Charge(%+v) accepted", ch)
		}
	}
}
