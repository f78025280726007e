package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run the real binary against a real broker (kfake over TCP)
// and a real ClickHouse, and kill it with SIGKILL at chosen points of a
// window's life (DPINSTRUCT_FAULT makes the process stop there and wait).

var faultLine = regexp.MustCompile(`FAULT (\S+) window=(\S+)`)

func TestCrashAndRestartWritesEachWindowExactlyOnce(t *testing.T) {
	dsn := needClickHouse(t)
	tests := []struct {
		name  string
		fault string
		// windows written (status written) when the process is killed
		writtenAtCrash int
		// windows the restarted process itself must process (replays count)
		restartWindows int
	}{
		{"killed between write and commit", "before-commit:2", 2, 1},
		{"killed during processing", "after-plan:2", 1, 2},
		{"killed before the write", "before-write:2", 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			secret := "SECRET-" + randomHex(t, 8)
			db, conn := freshDatabase(t, dsn)
			dbName := db[strings.LastIndex(db, "/")+1:]
			addr := startBroker(t, 1)
			produceRecords(t, addr, "instr", 3000, secret)
			cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 1000})

			first := startProc(t, []string{"DPINSTRUCT_FAULT=" + tt.fault}, "run", "--config", cfg)
			first.waitFor("FAULT ", 2*time.Minute)
			m := faultLine.FindStringSubmatch(first.output())
			if m == nil {
				t.Fatalf("no FAULT line:\n%s", first.output())
			}
			faultWindow := m[2]
			first.signal(syscall.SIGKILL)
			if code := first.wait(30 * time.Second); code != -int(syscall.SIGKILL) {
				t.Fatalf("first run: exit %d, want SIGKILL", code)
			}
			if got := len(writtenWindows(t, conn, dbName)); got != tt.writtenAtCrash {
				t.Fatalf("after the crash %d windows are written, want %d", got, tt.writtenAtCrash)
			}

			second := startProc(t, nil, "run", "--config", cfg, "--max-windows", strconv.Itoa(tt.restartWindows))
			if code := second.wait(2 * time.Minute); code != 0 {
				t.Fatalf("restart: exit %d:\n%s", code, second.output())
			}
			ws := checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
			if len(ws) != 3 {
				t.Errorf("%d windows written, want 3", len(ws))
			}
			found := false
			for _, w := range ws {
				found = found || w.id == faultWindow
			}
			if !found {
				t.Errorf("window %s, interrupted at %s, was not written under the same id", faultWindow, tt.fault)
			}
			assertNoSecret(t, "first run's logs", first.output(), secret)
			assertNoSecret(t, "second run's logs", second.output(), secret)
			assertNoSecretInDB(t, conn, dbName, secret)
		})
	}
}

func TestClickHouseRestartMidRun(t *testing.T) {
	needClickHouse(t)
	script, err := filepath.Abs("../../deploy/local/clickhouse.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port, httpPort := freePort(t), freePort(t)
	chEnv := append(os.Environ(),
		"DPINSTRUCT_CH_DIR="+dir, "DPINSTRUCT_CH_PORT="+strconv.Itoa(port), "DPINSTRUCT_CH_HTTP_PORT="+strconv.Itoa(httpPort))
	ch := func(action string) {
		t.Helper()
		cmd := exec.Command(script, action)
		cmd.Env = chEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("clickhouse.sh %s: %v\n%s", action, err, out)
		}
	}
	ch("start")
	t.Cleanup(func() { ch("stop") })
	dsn := fmt.Sprintf("clickhouse://default@127.0.0.1:%d/default", port)
	db, conn := freshDatabase(t, dsn)
	dbName := db[strings.LastIndex(db, "/")+1:]

	secret := "SECRET-" + randomHex(t, 8)
	addr := startBroker(t, 1)
	produceRecords(t, addr, "instr", 4000, secret)
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 500})
	run := startProc(t, nil, "run", "--config", cfg, "--max-windows", "8")
	run.waitFor("window written and committed", time.Minute)

	ch("stop")
	time.Sleep(3 * time.Second)
	ch("start")

	if code := run.wait(3 * time.Minute); code != 0 {
		t.Fatalf("connector exit %d across a ClickHouse restart:\n%s", code, run.output())
	}
	if err := conn.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	ws := checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
	if len(ws) != 8 {
		t.Errorf("%d windows written, want 8", len(ws))
	}
	assertNoSecret(t, "logs", run.output(), secret)
}

func TestRebalanceWhileWindowOpenPutsNoRecordInTwoWindows(t *testing.T) {
	dsn := needClickHouse(t)
	t.Parallel()
	secret := "SECRET-" + randomHex(t, 8)
	db, conn := freshDatabase(t, dsn)
	dbName := db[strings.LastIndex(db, "/")+1:]
	addr := startBroker(t, 4)
	produceRecords(t, addr, "instr", 4000, secret)

	// Windows close by time only, so the first connector holds an open
	// window on every partition when the second one joins the group.
	base := e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, maxRecords: 1_000_000, maxDuration: 6 * time.Second}
	a, b := base, base
	a.instance, b.instance = "inst-a", "inst-b"
	first := startProc(t, nil, "run", "--config", writeE2EConfig(t, a))
	time.Sleep(2 * time.Second)
	second := startProc(t, nil, "run", "--config", writeE2EConfig(t, b))
	// More records after the join: the second connector's windows then
	// reach past the first one's, so their plans overlap without being equal.
	second.waitFor("reading partition", time.Minute)
	produceRecords(t, addr, "instr", 4000, secret)
	ends := partitionEnds(t, addr, "instr")
	var total int64
	for _, n := range ends {
		total += n
	}

	deadline := time.Now().Add(2 * time.Minute)
	for {
		var covered int64
		for _, w := range writtenWindows(t, conn, dbName) {
			covered += w.last - w.first + 1
		}
		if covered >= total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d offsets written\nfirst:\n%s\nsecond:\n%s", covered, total, first.output(), second.output())
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Both read partitions the other had open windows on; the later plan
	// must notice the earlier one and give way.
	if !strings.Contains(first.output()+second.output(), "abandoned") {
		t.Errorf("no plan was abandoned: the test did not exercise a plan race")
	}
	first.signal(syscall.SIGTERM)
	second.signal(syscall.SIGTERM)
	for _, p := range []*proc{first, second} {
		if code := p.wait(time.Minute); code != 0 {
			t.Errorf("exit %d after SIGTERM:\n%s", code, p.output())
		}
	}
	checkExactlyOnce(t, conn, dbName, ends)
	assertNoSecret(t, "first connector's logs", first.output(), secret)
	assertNoSecret(t, "second connector's logs", second.output(), secret)
	assertNoSecretInDB(t, conn, dbName, secret)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
