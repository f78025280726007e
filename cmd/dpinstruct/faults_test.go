package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBrokerOutageMidWindow freezes the broker process (SIGSTOP: every
// connection hangs, as with a broker that crashed or a partition of the
// network) after the first window is written and while the second is
// filling, for longer than the client timeouts, then lets it go on. The
// connector waits it out: every record lands in exactly one written window
// and the process exits 0. (The embedded broker keeps topics in memory, so
// a true restart would lose the topic itself; against a real cluster a
// restart is the same outage as seen from the connector.)
func TestBrokerOutageMidWindow(t *testing.T) {
	dsn := needClickHouse(t)
	db, dbName, conn := freshDatabase(t, dsn)
	brk := startProc(t, nil, "broker", "--listen", "127.0.0.1:0", "--partitions", "1")
	brk.waitFor("broker listening on ", 30*time.Second)
	addr := strings.TrimSpace(strings.SplitN(strings.SplitN(brk.output(), "broker listening on ", 2)[1], "\n", 2)[0])
	produceRecords(t, addr, "instr", 3000, "")
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 1000})

	run := startProc(t, nil, "run", "--config", cfg, "--max-windows", "3")
	run.waitFor("window written and committed", 2*time.Minute)
	brk.signal(syscall.SIGSTOP)
	time.Sleep(15 * time.Second)
	brk.signal(syscall.SIGCONT)
	if code := run.wait(3 * time.Minute); code != 0 {
		t.Fatalf("connector exit %d after the broker outage:\n%s", code, run.output())
	}
	ws := checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
	if len(ws) != 3 {
		t.Errorf("%d windows written, want 3", len(ws))
	}
}

// TestKilledDuringDPTraining SIGKILLs the connector while the dp processor
// trains a window: the restart replays the window under the same id as a
// new attempt, charged again (the ledger never under-counts), and writes
// it exactly once.
func TestKilledDuringDPTraining(t *testing.T) {
	dsn := needClickHouse(t)
	db, dbName, conn := freshDatabase(t, dsn)
	addr := startBroker(t, 1)
	produceRecords(t, addr, "instr", 60, "")
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 60, epsilon: 8,
		processor: "  name: dp\n  expected_batch: 16\n  epochs: 4\n  seq_len: 16\n  pool_factor: 2\n  clusters: 4\n  embedding: lexical\n  checkpoint_dir: " + t.TempDir() + "\n"})
	first := startProc(t, []string{"DPINSTRUCT_OBSERVABILITY_LOG_LEVEL=debug"}, "run", "--config", cfg)
	first.waitFor(`"stage":"DP fine-tuning"`, 2*time.Minute)
	first.signal(syscall.SIGKILL)
	if code := first.wait(30 * time.Second); code != -int(syscall.SIGKILL) {
		t.Fatalf("first run: exit %d, want SIGKILL", code)
	}
	if n := len(writtenWindows(t, conn, dbName)); n != 0 {
		t.Fatalf("%d windows written by the killed run", n)
	}
	second := startProc(t, nil, "run", "--config", cfg, "--max-windows", "1")
	if code := second.wait(5 * time.Minute); code != 0 {
		t.Fatalf("restart: exit %d:\n%s", code, second.output())
	}
	checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
	entries := ledgerEntries(t, conn, dbName, "g")
	if len(entries) != 2 || entries[0].window != entries[1].window {
		t.Errorf("ledger %+v: want the window charged twice (killed attempt and replay)", entries)
	}
}

// TestBrokerRestartMidWindow kills the broker process after the first
// window is written and starts a new one on the same address. The embedded
// broker keeps everything in memory, so the test re-produces the same
// records (same offsets, as a persistent broker would hold them); the
// group's committed offsets are gone, as after losing __consumer_offsets.
// The connector reconnects, re-reads from the start, finds the first window
// written in the ledger (so commits it instead of processing it again), and
// writes the rest, including the window that was half full when the broker
// died: every record lands in exactly one written window.
func TestBrokerRestartMidWindow(t *testing.T) {
	dsn := needClickHouse(t)
	db, dbName, conn := freshDatabase(t, dsn)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startBrokerProc := func() *proc {
		t.Helper()
		b := startProc(t, nil, "broker", "--listen", addr, "--partitions", "1")
		b.waitFor("broker listening on ", 30*time.Second)
		return b
	}
	brk := startBrokerProc()
	// 1,500 records: the first window is written and the second is half
	// full when the broker dies.
	produceRecords(t, addr, "instr", 1500, "")
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 1000})

	run := startProc(t, nil, "run", "--config", cfg, "--max-windows", "3")
	run.waitFor("window written and committed", 2*time.Minute)
	time.Sleep(2 * time.Second) // the second window's first 500 records are read
	brk.signal(syscall.SIGKILL)
	brk.wait(30 * time.Second)
	time.Sleep(2 * time.Second)
	startBrokerProc()
	produceRecords(t, addr, "instr", 3000, "")

	if code := run.wait(4 * time.Minute); code != 0 {
		t.Fatalf("connector exit %d across a broker restart:\n%s", code, run.output())
	}
	ws := checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
	if len(ws) != 3 {
		t.Errorf("%d windows written, want 3", len(ws))
	}
}
