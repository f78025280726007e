package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ledgerEntry is one privacy_ledger row.
type ledgerEntry struct {
	window, attempt string
	epsilon, delta  float64
}

func ledgerEntries(t *testing.T, conn driver.Conn, db, group string) []ledgerEntry {
	t.Helper()
	rows, err := conn.Query(context.Background(), fmt.Sprintf(
		"SELECT window_id, attempt, epsilon, delta FROM %s.privacy_ledger WHERE group_id = ? ORDER BY window_id", db), group)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []ledgerEntry
	for rows.Next() {
		var e ledgerEntry
		if err := rows.Scan(&e.window, &e.attempt, &e.epsilon, &e.delta); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// windowAttempts maps each written window to the attempt its written mark
// names and the epsilon it was published under.
func windowAttempts(t *testing.T, conn driver.Conn, db string) map[string]ledgerEntry {
	t.Helper()
	rows, err := conn.Query(context.Background(), fmt.Sprintf(
		"SELECT window_id, attempt, epsilon, delta FROM %s.windows FINAL WHERE status = 'written'", db))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]ledgerEntry{}
	for rows.Next() {
		var e ledgerEntry
		if err := rows.Scan(&e.window, &e.attempt, &e.epsilon, &e.delta); err != nil {
			t.Fatal(err)
		}
		out[e.window] = e
	}
	return out
}

// privacySpent runs `dpinstruct privacy spent` and returns its output.
func privacySpent(t *testing.T, cfg string) string {
	t.Helper()
	p := startProc(t, nil, "privacy", "spent", "--config", cfg)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("privacy spent: exit %d:\n%s", code, p.output())
	}
	return p.output()
}

// TestLifetimeCapRefusesTheWindowThatWouldPassIt runs the real binary with
// a per-window epsilon of 1 and a lifetime cap of 2.5 at unit user (a user
// may be in every window, and the count processor's charges have no plan
// to compose by RDP, so they add up): two windows are charged (in
// ClickHouse and the local file), written and committed; the third is
// refused before its processor runs, the process exits 3 with a clear
// message, and nothing of the third window is released. Raising the cap and
// restarting processes it from its uncommitted offsets.
func TestLifetimeCapRefusesTheWindowThatWouldPassIt(t *testing.T) {
	dsn := needClickHouse(t)
	secret := "SECRET-" + randomHex(t, 8)
	db, dbName, conn := freshDatabase(t, dsn)
	addr := startBroker(t, 1)
	produceRecords(t, addr, "instr", 3000, secret)
	ledgerFile := filepath.Join(t.TempDir(), "ledger.jsonl")
	c := e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 1000,
		epsilon: 1, lifetimeEpsilon: 2.5, ledgerFile: ledgerFile, unit: "user"}
	cfg := writeE2EConfig(t, c)

	first := startProc(t, nil, "run", "--config", cfg)
	if code := first.wait(2 * time.Minute); code != 3 {
		t.Fatalf("run past the cap: exit %d, want 3:\n%s", code, first.output())
	}
	out := first.output()
	for _, want := range []string{"privacy budget exhausted", "was not trained or released", "lifetime cap 2.5"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	ws := writtenWindows(t, conn, dbName)
	if len(ws) != 2 || ws[1].last != 1999 {
		t.Fatalf("written windows %+v, want two covering offsets 0-1999", ws)
	}
	entries := ledgerEntries(t, conn, dbName, "g")
	if len(entries) != 2 {
		t.Fatalf("privacy_ledger has %d entries, want 2 (the refused window is not charged): %+v", len(entries), entries)
	}
	// Each written window names the attempt that was charged, and is
	// published under the charged (epsilon, delta).
	written := windowAttempts(t, conn, dbName)
	for _, e := range entries {
		w, ok := written[e.window]
		if !ok || w.attempt != e.attempt || w.epsilon != 1 || w.delta != 1e-6 || e.epsilon != 1 || e.delta != 1e-6 {
			t.Errorf("ledger entry %+v does not match written window %+v", e, w)
		}
	}
	raw, err := os.ReadFile(ledgerFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "\n"); n != 2 {
		t.Errorf("ledger file has %d charges, want 2:\n%s", n, raw)
	}
	if st, err := os.Stat(ledgerFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("ledger file mode: %v %v, want 0600", st.Mode(), err)
	}
	spent := privacySpent(t, cfg)
	if !strings.HasSuffix(strings.TrimSpace(spent), "spent epsilon=2 delta=2e-06 summed_epsilon=2 summed_delta=2e-06 attempts=2") ||
		!strings.Contains(spent, "lifetime cap 2.5, left 0.500") || !strings.Contains(spent, "worst: user") {
		t.Errorf("privacy spent:\n%s", spent)
	}

	// A deliberate raise of the cap lets the refused window run, from the
	// offsets the refusal left uncommitted.
	c.lifetimeEpsilon = 3
	cfg = writeE2EConfig(t, c)
	second := startProc(t, nil, "run", "--config", cfg, "--max-windows", "1")
	if code := second.wait(2 * time.Minute); code != 0 {
		t.Fatalf("run after raising the cap: exit %d:\n%s", code, second.output())
	}
	checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
	if n := len(ledgerEntries(t, conn, dbName, "g")); n != 3 {
		t.Errorf("privacy_ledger has %d entries after the third window, want 3", n)
	}
	for where, text := range map[string]string{"first run": out, "second run": second.output(), "ledger file": string(raw), "privacy spent": spent} {
		assertNoSecret(t, where, text, secret)
	}
	assertNoSecretInDB(t, conn, dbName, secret)
}

// TestKilledAfterChargeIsChargedAgain: a process killed after a window was
// charged but before it was written leaves that charge in place; the replay
// is a new attempt and is charged again, so the ledger over-counts rather
// than under-counts, and only the replay's output is published. Both
// attempts read the same records, so even per record they compose.
func TestKilledAfterChargeIsChargedAgain(t *testing.T) {
	dsn := needClickHouse(t)
	db, dbName, conn := freshDatabase(t, dsn)
	addr := startBroker(t, 1)
	produceRecords(t, addr, "instr", 1000, "")
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 1000, epsilon: 2})
	first := startProc(t, []string{"DPINSTRUCT_FAULT=after-charge"}, "run", "--config", cfg)
	first.waitFor("FAULT after-charge", 2*time.Minute)
	first.signal(syscall.SIGKILL)
	first.wait(30 * time.Second)
	if n := len(ledgerEntries(t, conn, dbName, "g")); n != 1 {
		t.Fatalf("after the crash the ledger has %d entries, want 1", n)
	}
	second := startProc(t, nil, "run", "--config", cfg, "--max-windows", "1")
	if code := second.wait(2 * time.Minute); code != 0 {
		t.Fatalf("restart: exit %d:\n%s", code, second.output())
	}
	checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
	entries := ledgerEntries(t, conn, dbName, "g")
	if len(entries) != 2 || entries[0].window != entries[1].window || entries[0].attempt == entries[1].attempt {
		t.Fatalf("ledger %+v: want two attempts of one window", entries)
	}
	w := windowAttempts(t, conn, dbName)[entries[0].window]
	if w.attempt != entries[0].attempt && w.attempt != entries[1].attempt {
		t.Errorf("written attempt %s is not among the charged ones %+v", w.attempt, entries)
	}
	spent := privacySpent(t, cfg)
	if !strings.HasSuffix(strings.TrimSpace(spent), "spent epsilon=4 delta=2e-06 summed_epsilon=4 summed_delta=2e-06 attempts=2") ||
		!strings.Contains(spent, "worst: record instr[0] offsets 0-999") {
		t.Errorf("privacy spent:\n%s", spent)
	}
}

// TestFullLedgerDiskStopsTheWindowBeforeTraining: when the local ledger
// file cannot be written (the process runs under a file-size limit, which
// fails writes as a full disk does), the window is not processed, the
// process exits 1 naming the ledger file, the file holds only whole lines,
// and a rerun with room completes every window exactly once. ClickHouse may
// hold a charge the file refused: the ledger over-counts, never under.
func TestFullLedgerDiskStopsTheWindowBeforeTraining(t *testing.T) {
	dsn := needClickHouse(t)
	db, dbName, conn := freshDatabase(t, dsn)
	addr := startBroker(t, 1)
	// Six windows; a charge line is ~300 bytes (with its offset ranges) and
	// bash's `ulimit -f 1` is 1 KiB, so the fourth charge does not fit.
	produceRecords(t, addr, "instr", 6000, "")
	ledgerFile := filepath.Join(t.TempDir(), "ledger.jsonl")
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a",
		maxRecords: 1000, epsilon: 1, ledgerFile: ledgerFile})

	full := startProc(t, []string{"ULIMIT_FSIZE=1"}, "run", "--config", cfg)
	if code := full.wait(2 * time.Minute); code != 1 {
		t.Fatalf("run with a full ledger disk: exit %d, want 1:\n%s", code, full.output())
	}
	if out := full.output(); !strings.Contains(out, "file ledger") || !strings.Contains(out, "file too large") {
		t.Errorf("the error does not name the ledger file and the cause:\n%s", out)
	}
	written := len(writtenWindows(t, conn, dbName))
	raw, err := os.ReadFile(ledgerFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(string(raw), "\n")
	if len(raw) == 0 || raw[len(raw)-1] != '\n' || lines != written {
		t.Errorf("ledger file holds %d lines (%d bytes, torn: %v) for %d written windows", lines, len(raw), len(raw) > 0 && raw[len(raw)-1] != '\n', written)
	}
	if n := len(ledgerEntries(t, conn, dbName, "g")); n < written {
		t.Errorf("ClickHouse ledger has %d entries for %d written windows: under-counted", n, written)
	}

	if written == 0 || written >= 6 {
		t.Fatalf("%d windows written before the ledger file filled up", written)
	}
	rerun := startProc(t, nil, "run", "--config", cfg, "--max-windows", strconv.Itoa(6-written))
	if code := rerun.wait(2 * time.Minute); code != 0 {
		t.Fatalf("rerun: exit %d:\n%s", code, rerun.output())
	}
	checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
	raw, _ = os.ReadFile(ledgerFile)
	if n := strings.Count(string(raw), "\n"); n != 6 {
		t.Errorf("ledger file has %d charges after the rerun, want 6", n)
	}
}
