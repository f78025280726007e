package main

import (
	"bytes"
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

	"github.com/dpinstruct/dpinstruct/internal/serverwatch"
	"github.com/segmentio/kafka-go"
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
			db, dbName, conn := freshDatabase(t, dsn)
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
	serverwatch.ReportOnFailure(t, dir)
	dsn := fmt.Sprintf("clickhouse://default@127.0.0.1:%d/default", port)
	db, dbName, conn := freshDatabase(t, dsn)

	secret := "SECRET-" + randomHex(t, 8)
	addr := startBroker(t, 1)
	produceRecords(t, addr, "instr", 4000, secret)
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 500})
	// The second window pauses just before its write; ClickHouse is stopped
	// then, so the write runs against a stopped server and is retried
	// until the restart.
	run := startProc(t, []string{"DPINSTRUCT_FAULT=before-write:2:4s"}, "run", "--config", cfg, "--max-windows", "8")
	run.waitFor("FAULT before-write", time.Minute)

	ch("stop")
	time.Sleep(6 * time.Second) // the paused write starts, fails and retries
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
	db, dbName, conn := freshDatabase(t, dsn)
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
	awaitAllWritten(t, conn, dbName, ends, 2*time.Minute, first, second)
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

func TestBadInputMetricsAndGracefulShutdown(t *testing.T) {
	dsn := needClickHouse(t)
	t.Parallel()
	secret := "SECRET-" + randomHex(t, 8)
	db, dbName, conn := freshDatabase(t, dsn)
	addr := startBroker(t, 1)

	good := func(i int) kafka.Message {
		return kafka.Message{Value: []byte(fmt.Sprintf(`{"text":"ordinary question %d %s"}`, i, secret))}
	}
	bad := []struct {
		reason string
		value  []byte
	}{
		{"malformed", []byte(`{"text": "unterminated ` + secret)},
		{"malformed", []byte(`["not", "an", "object", "` + secret + `"]`)},
		{"empty_text", []byte(`{"text": "   ", "id": "` + secret + `"}`)},
		{"empty_text", []byte(`{"id": "` + secret + `"}`)},
		{"invalid_utf8", append([]byte(`{"text":"`+secret+` `), 0xff, 0xfe, '"', '}')},
		{"oversized", []byte(`{"text":"` + secret + strings.Repeat("x", 5000) + `"}`)},
	}
	var msgs []kafka.Message
	for i := 0; i < 14; i++ {
		msgs = append(msgs, good(i))
	}
	for _, b := range bad {
		msgs = append(msgs, kafka.Message{Value: b.value})
	}
	writeMessages(t, addr, "instr", msgs...) // 20 offsets: exactly one window

	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 20})
	env := []string{"DPINSTRUCT_KAFKA_MAX_MESSAGE_BYTES=4096"}
	run := startProc(t, env, "run", "--config", cfg)
	run.waitFor("window written and committed", time.Minute)

	// Operations: /healthz and /metrics, with no text in any label or value.
	m := regexp.MustCompile(`"addr":"([^"]+)"`).FindStringSubmatch(run.output())
	if m == nil {
		t.Fatalf("no metrics address logged:\n%s", run.output())
	}
	health := httpGet(t, "http://"+m[1]+"/healthz")
	if strings.TrimSpace(health) != "ok" {
		t.Errorf("/healthz = %q", health)
	}
	metrics := httpGet(t, "http://"+m[1]+"/metrics")
	for _, want := range []string{
		`dpinstruct_dead_letters_total{reason="malformed"} 2`,
		`dpinstruct_dead_letters_total{reason="empty_text"} 2`,
		`dpinstruct_dead_letters_total{reason="invalid_utf8"} 1`,
		`dpinstruct_dead_letters_total{reason="oversized"} 1`,
		`dpinstruct_records_in_total 20`,
		`dpinstruct_windows_total{outcome="written"} 1`,
		`dpinstruct_sink_latency_seconds_count{op="write"} 1`,
		`dpinstruct_consumer_lag`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	assertNoSecret(t, "metrics", metrics, secret)

	// Dead letters: byte-for-byte copies with the reason in a header.
	dl := readAll(t, addr, "instr.dlq", len(bad))
	for i, b := range bad {
		if !bytes.Equal(dl[i].Value, b.value) {
			t.Errorf("dead letter %d is not a byte copy of the message", i)
		}
		if got := header(dl[i], "dpinstruct-reason"); got != b.reason {
			t.Errorf("dead letter %d reason %q, want %q", i, got, b.reason)
		}
		assertNoSecret(t, "dead-letter reason detail", header(dl[i], "dpinstruct-detail"), secret)
	}
	ws := writtenWindows(t, conn, dbName)
	if len(ws) != 1 || ws[0].records != 14 || ws[0].deadLetter != uint64(len(bad)) {
		t.Fatalf("want one window of 14 records and %d dead letters, got %+v", len(bad), ws)
	}

	// Graceful shutdown: records of a window still filling are not
	// committed, so the next run windows them.
	for i := 0; i < 5; i++ {
		writeMessages(t, addr, "instr", good(100+i))
	}
	time.Sleep(time.Second) // let them be fetched into an open window
	run.signal(syscall.SIGTERM)
	if code := run.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, run.output())
	}
	rerun := startProc(t, []string{"DPINSTRUCT_WINDOW_MAX_DURATION=1s"}, "run", "--config", cfg, "--max-windows", "1")
	if code := rerun.wait(time.Minute); code != 0 {
		t.Fatalf("rerun exit %d:\n%s", code, rerun.output())
	}
	checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
	assertNoSecret(t, "logs", run.output()+rerun.output(), secret)
	assertNoSecretInDB(t, conn, dbName, secret)
}

func TestBadConfigFailsFastNamingTheField(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"unknown field", "kafka:\n  topik: x\n", "topik"},
		{"bad value", "window:\n  max_records: 0\n  max_duration: 0s\n", "window.max_records"},
		{"wrong type", "window:\n  lease: soon\n", "window.lease"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			run := startProc(t, nil, "run", "--config", p)
			if code := run.wait(30 * time.Second); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(run.output(), tt.want) {
				t.Errorf("output does not name %q:\n%s", tt.want, run.output())
			}
		})
	}
}

func TestUnreachableServicesGiveClearErrors(t *testing.T) {
	dsn := needClickHouse(t)
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tests := []struct {
		name, brokers, dsn, want string
	}{
		{"clickhouse", startBroker(t, 1), "clickhouse://default@" + closed + "/x", "unreachable"},
		{"kafka", closed, dsn, "no Kafka broker reachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			body := fmt.Sprintf("kafka:\n  brokers: [%s]\nclickhouse:\n  dsn: %s\n  max_attempts: 2\n  max_backoff: 100ms\n", tt.brokers, tt.dsn)
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			run := startProc(t, []string{"DPINSTRUCT_OBSERVABILITY_LISTEN="}, "run", "--config", p)
			if code := run.wait(time.Minute); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(run.output(), tt.want) || !strings.Contains(run.output(), closed) {
				t.Errorf("error does not say %q and where (%s):\n%s", tt.want, closed, run.output())
			}
		})
	}
}

func TestSpillFilesArePrivateAndDeletedAfterCommit(t *testing.T) {
	dsn := needClickHouse(t)
	t.Parallel()
	secret := "SECRET-" + randomHex(t, 8)
	db, dbName, conn := freshDatabase(t, dsn)
	addr := startBroker(t, 1)
	produceRecords(t, addr, "instr", 2000, secret)
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 1000})
	spill := filepath.Join(t.TempDir(), "spill")
	env := []string{"DPINSTRUCT_WINDOW_SPILL_DIR=" + spill, "DPINSTRUCT_WINDOW_MEMORY_BYTES=4096", "DPINSTRUCT_WINDOW_BATCH_ROWS=50"}

	run := startProc(t, append(env, "DPINSTRUCT_FAULT=before-commit:1"), "run", "--config", cfg)
	run.waitFor("FAULT before-commit", time.Minute)
	files := spillFiles(t, spill)
	if len(files) == 0 {
		t.Fatal("a window 25x its memory bound left no spill file")
	}
	for path, mode := range files {
		want := os.FileMode(0o600)
		if mode.IsDir() {
			want = 0o700
		}
		if mode.Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, mode.Perm(), want)
		}
	}
	run.signal(syscall.SIGKILL)
	run.wait(30 * time.Second)

	// The restart removes what the killed run left, and deletes its own
	// spill files once its window is committed.
	rerun := startProc(t, env, "run", "--config", cfg, "--max-windows", "1")
	if code := rerun.wait(time.Minute); code != 0 {
		t.Fatalf("rerun exit %d:\n%s", code, rerun.output())
	}
	for path, mode := range spillFiles(t, spill) {
		if !mode.IsDir() {
			t.Errorf("spill file %s outlived its window", path)
		}
	}
	if !strings.Contains(rerun.output(), `"spilled":true`) {
		t.Errorf("the rerun's window did not spill:\n%s", rerun.output())
	}
	checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
}

// spillFiles lists everything under dir with its mode.
func spillFiles(t *testing.T, dir string) map[string]os.FileMode {
	t.Helper()
	out := map[string]os.FileMode{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			out[p] = info.Mode()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
