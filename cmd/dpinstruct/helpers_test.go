package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/internal/serverwatch"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/dpinstruct/dpinstruct/stream/broker"
)

// binPath is the dpinstruct binary built once for the process tests.
var binPath string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "dpinstruct-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binPath = filepath.Join(dir, "dpinstruct")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building dpinstruct: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// needClickHouse returns the DSN of the test server, or skips.
func needClickHouse(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("process tests skipped in -short mode")
	}
	dsn := os.Getenv("DPINSTRUCT_CLICKHOUSE_DSN")
	if dsn == "" {
		t.Skip("DPINSTRUCT_CLICKHOUSE_DSN unset: start ClickHouse with deploy/local/clickhouse.sh start (make test does)")
	}
	serverwatch.ReportOnFailure(t)
	return dsn
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testCluster is the ClickHouse cluster the tests run against
// (DPINSTRUCT_CLICKHOUSE_CLUSTER, set by deploy/local/cluster.sh env), or ""
// for a single server: connectors then run with clickhouse.cluster set.
var testCluster = os.Getenv("DPINSTRUCT_CLICKHOUSE_CLUSTER")

// peerDSN is the server another connector process connects to: in a
// cluster run one on another shard (DPINSTRUCT_CLICKHOUSE_PEER_DSN), else
// dsn itself. The database of dsn is kept.
func peerDSN(t *testing.T, dsn string) string {
	t.Helper()
	peer := os.Getenv("DPINSTRUCT_CLICKHOUSE_PEER_DSN")
	if peer == "" {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := url.Parse(peer)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Host
	return u.String()
}

// freshDatabase points dsn at a new, empty database dropped after the test;
// it returns that DSN, the database name and a connection.
func freshDatabase(t *testing.T, dsn string) (string, string, driver.Conn) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := "dpi_e2e_" + randomHex(t, 4)
	u.Path = "/" + db
	opts, err := clickhouse.ParseDSN(u.String())
	if err != nil {
		t.Fatal(err)
	}
	opts.Auth.Database = "default"
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		drop := "DROP DATABASE IF EXISTS " + db
		if testCluster != "" {
			drop += " ON CLUSTER " + testCluster
		}
		_ = conn.Exec(context.Background(), drop)
		_ = conn.Close()
	})
	return u.String(), db, conn
}

// startBroker runs an embedded broker in the test process: it outlives
// the connector processes the tests kill.
func startBroker(t *testing.T, partitions int) string {
	t.Helper()
	b, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

// produceRecords writes n JSON records, each carrying the secret, keyed by
// user so they spread over the topic's partitions.
func produceRecords(t *testing.T, addr, topic string, n int, secret string) {
	t.Helper()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{
			Key:   []byte(fmt.Sprintf("user-%d", i%97)),
			Value: []byte(fmt.Sprintf(`{"id":"r%d","user_id":"user-%d","text":"please summarise my note %s number %d"}`, i, i%97, secret, i)),
		}
	}
	writeMessages(t, addr, topic, msgs...)
}

type e2eConfig struct {
	brokers, topic, group, dsn, instance string
	maxRecords                           int
	maxDuration, lease                   time.Duration
	// privacy section; zero epsilon keeps the defaults
	epsilon, lifetimeEpsilon float64
	ledgerFile               string
	// unit sets privacy.unit (empty: the default, record)
	unit string
	// processor is the YAML body of the processor section (default: count)
	processor string
	// outputTopic sets kafka.output_topic
	outputTopic string
}

func writeE2EConfig(t *testing.T, c e2eConfig) string {
	t.Helper()
	if c.maxDuration == 0 {
		c.maxDuration = 10 * time.Minute
	}
	if c.lease == 0 {
		c.lease = 3 * time.Second
	}
	if c.epsilon == 0 {
		c.epsilon = 4
	}
	unitLine := ""
	if c.unit != "" {
		unitLine = "  unit: " + c.unit + "\n"
	}
	if c.processor == "" {
		c.processor = "  name: count\n  rows_per_records: 10\n"
	}
	body := fmt.Sprintf(`kafka:
  brokers: [%s]
  topic: %s
  group_id: %s
  dead_letter_topic: %s.dlq
  output_topic: %q
  session_timeout: 6s
clickhouse:
  dsn: %s
  cluster: %q
  max_attempts: 12
  initial_backoff: 100ms
  max_backoff: 2s
window:
  max_records: %d
  max_duration: %s
  lease: %s
  plan_settle: 1500ms
  spill_dir: %s
processor:
%sprivacy:
  epsilon: %g
  lifetime_epsilon: %g
  ledger_file: %q
%sobservability:
  listen: 127.0.0.1:0
  log_format: json
instance: %s
`, c.brokers, c.topic, c.group, c.topic, c.outputTopic, c.dsn, testCluster, c.maxRecords, c.maxDuration, c.lease,
		filepath.Join(t.TempDir(), "spill"), c.processor, c.epsilon, c.lifetimeEpsilon, c.ledgerFile, unitLine, c.instance)
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// proc is a connector process whose stderr the test can wait on.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(binPath, args...), done: make(chan struct{})}
	// ULIMIT_FSIZE=<512-byte blocks> runs the binary under that file-size
	// limit: writes past it fail as on a full disk (Go ignores SIGXFSZ).
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "ULIMIT_FSIZE="); ok {
			p.cmd = exec.Command("bash", append([]string{"-c", "ulimit -f " + v + ` && exec "$0" "$@"`, binPath}, args...)...)
		}
	}
	// The test's own DPINSTRUCT_* settings (the DSN of make test) would
	// override the config file: the child sees only what the test passes.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DPINSTRUCT_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.cmd.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until stderr contains s.
func (p *proc) waitFor(s string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.output(), s) {
			return
		}
		select {
		case <-p.done:
			if strings.Contains(p.output(), s) {
				return
			}
			p.t.Fatalf("process exited (%v) before printing %q:\n%s", p.err, s, p.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.t.Fatalf("timed out waiting for %q:\n%s", s, p.output())
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("process still running after %s:\n%s", timeout, p.output())
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	p.t.Fatalf("wait: %v", p.err)
	return -1
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// writtenWindow is one row of `windows FINAL` with status written.
type writtenWindow struct {
	id                  string
	partition           int32
	first, last         int64
	records, deadLetter uint64
	outputRows          uint64
}

func writtenWindows(t *testing.T, conn driver.Conn, db string) []writtenWindow {
	t.Helper()
	rows, err := conn.Query(context.Background(), fmt.Sprintf(`
		SELECT window_id, partitions[1], first_offsets[1], last_offsets[1], records, dead_letters, output_rows
		FROM %s.windows FINAL WHERE status = 'written' ORDER BY partitions[1], first_offsets[1]`, db))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []writtenWindow
	for rows.Next() {
		var w writtenWindow
		if err := rows.Scan(&w.id, &w.partition, &w.first, &w.last, &w.records, &w.deadLetter, &w.outputRows); err != nil {
			t.Fatal(err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkExactlyOnce asserts the written windows tile each partition's
// offsets [0, perPartition[p]) with no gap and no overlap, and that the
// published output holds exactly one copy of each window's rows.
func checkExactlyOnce(t *testing.T, conn driver.Conn, db string, perPartition map[int32]int64) []writtenWindow {
	t.Helper()
	ws := writtenWindows(t, conn, db)
	next := map[int32]int64{}
	var wantRows uint64
	for _, w := range ws {
		if w.first != next[w.partition] {
			t.Errorf("partition %d: window %s starts at %d, expected %d (gap or overlap)", w.partition, w.id, w.first, next[w.partition])
		}
		if got := uint64(w.last - w.first + 1); got != w.records+w.deadLetter {
			t.Errorf("window %s covers %d offsets but holds %d records + %d dead letters", w.id, got, w.records, w.deadLetter)
		}
		next[w.partition] = w.last + 1
		wantRows += w.outputRows
	}
	for p, n := range perPartition {
		if next[p] != n {
			t.Errorf("partition %d: written windows end at %d, want %d (records lost)", p, next[p], n)
		}
	}
	var published, distinctKeys uint64
	if err := conn.QueryRow(context.Background(), fmt.Sprintf(
		"SELECT count(), uniqExact(window_id, seq) FROM %s.published_instructions", db)).Scan(&published, &distinctKeys); err != nil {
		t.Fatal(err)
	}
	if published != wantRows || distinctKeys != wantRows {
		t.Errorf("published_instructions has %d rows (%d distinct), windows promise %d", published, distinctKeys, wantRows)
	}
	return ws
}

// partitionEnds asks the broker how many offsets each partition holds.
// awaitAllWritten waits until the written windows cover every offset up to
// ends, failing after timeout with the output of procs.
func awaitAllWritten(t *testing.T, conn driver.Conn, db string, ends map[int32]int64, timeout time.Duration, procs ...*proc) {
	t.Helper()
	var total int64
	for _, n := range ends {
		total += n
	}
	deadline := time.Now().Add(timeout)
	for {
		var covered int64
		for _, w := range writtenWindows(t, conn, db) {
			covered += w.last - w.first + 1
		}
		if covered >= total {
			return
		}
		if time.Now().After(deadline) {
			var outputs strings.Builder
			for i, p := range procs {
				fmt.Fprintf(&outputs, "\nprocess %d:\n%s", i+1, p.output())
			}
			t.Fatalf("only %d of %d offsets written%s", covered, total, outputs.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func partitionEnds(t *testing.T, addr, topic string) map[int32]int64 {
	t.Helper()
	return securePartitionEnds(t, nil, addr, topic)
}

// assertNoSecret fails if the planted secret appears in the text.
func assertNoSecret(t *testing.T, where, text, secret string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Errorf("private text leaked into %s", where)
	}
}

// assertNoSecretInDB scans every String column of every table.
func assertNoSecretInDB(t *testing.T, conn driver.Conn, db, secret string) {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		"SELECT table, name FROM system.columns WHERE database = ? AND type = 'String'", db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		var n uint64
		q := fmt.Sprintf("SELECT count() FROM %s.%s WHERE position(%s, ?) > 0", db, table, col)
		if err := conn.QueryRow(context.Background(), q, secret).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n > 0 {
			t.Errorf("private text leaked into ClickHouse %s.%s (%d rows)", table, col, n)
		}
	}
}

// writeMessages produces msgs synchronously, keyed ones by key hash.
func writeMessages(t *testing.T, addr, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchSize: 500, BatchTimeout: time.Millisecond,
		BatchBytes: 1 << 20, AllowAutoTopicCreation: true,
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			return
		}
		// The first write may race topic auto-creation.
		if ctx.Err() != nil {
			t.Fatalf("producing: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readAll reads n messages from partition 0 of topic.
func readAll(t *testing.T, addr, topic string, n int) []kafka.Message {
	t.Helper()
	return secureReadAll(t, nil, addr, topic, n)
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
