package sink

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRenderCluster(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want, wantErr string
	}{
		{
			name: "MergeTree",
			in:   "CREATE TABLE IF NOT EXISTS `d`.t (\n    a String\n) ENGINE = MergeTree\nORDER BY a",
			want: "CREATE TABLE IF NOT EXISTS `d`.t ON CLUSTER `c` (\n    a String\n) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t', '{replica}')\nORDER BY a",
		},
		{
			name: "ReplacingMergeTree with version",
			in:   "CREATE TABLE IF NOT EXISTS `d`.w (\n    v UInt64\n) ENGINE = ReplacingMergeTree(v)\nORDER BY v",
			want: "CREATE TABLE IF NOT EXISTS `d`.w ON CLUSTER `c` (\n    v UInt64\n) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/w', '{replica}', v)\nORDER BY v",
		},
		{
			name: "empty parentheses",
			in:   "CREATE TABLE `d`.`x` (a UInt8) ENGINE = ReplacingMergeTree() ORDER BY a",
			want: "CREATE TABLE `d`.`x` ON CLUSTER `c` (a UInt8) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/x', '{replica}') ORDER BY a",
		},
		{
			name: "already replicated",
			in:   "CREATE TABLE `d`.x (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a",
			want: "CREATE TABLE `d`.x ON CLUSTER `c` (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a",
		},
		{
			name: "view",
			in:   "CREATE VIEW IF NOT EXISTS `d`.v AS\nSELECT a FROM `d`.t FINAL",
			want: "CREATE VIEW IF NOT EXISTS `d`.v ON CLUSTER `c` AS\nSELECT a FROM `d`.t FINAL",
		},
		{
			name: "alter",
			in:   "ALTER TABLE `d`.t ADD COLUMN b String",
			want: "ALTER TABLE `d`.t ON CLUSTER `c` ADD COLUMN b String",
		},
		{name: "other engine", in: "CREATE TABLE `d`.t (a UInt8) ENGINE = Memory", wantErr: "only MergeTree-family"},
		{name: "no engine", in: "CREATE TABLE `d`.t (a UInt8)", wantErr: "no ENGINE"},
		{name: "other database", in: "CREATE TABLE `e`.t (a UInt8) ENGINE = MergeTree ORDER BY a", wantErr: "cannot run statement on cluster"},
		{name: "insert", in: "INSERT INTO `d`.t VALUES (1)", wantErr: "cannot run statement on cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := renderCluster(tt.in, "d", "c")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("renderCluster = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("renderCluster =\n%s\n%v\nwant\n%s", got, err, tt.want)
			}
		})
	}
}

// Every embedded migration renders in cluster mode (a new migration that
// cannot fails here, not on a user's cluster), and without a cluster the
// DDL is exactly what render gives.
func TestRenderDDLEmbeddedMigrations(t *testing.T) {
	t.Parallel()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	plain := &Client{db: "dpi"}
	clustered := &Client{db: "dpi", cfg: Config{Cluster: "dpinstruct"}}
	if got := plain.createDatabaseDDL(); got != "CREATE DATABASE IF NOT EXISTS `dpi`" {
		t.Errorf("plain create database = %q", got)
	}
	if got := clustered.createDatabaseDDL(); got != "CREATE DATABASE IF NOT EXISTS `dpi` ON CLUSTER `dpinstruct`" {
		t.Errorf("cluster create database = %q", got)
	}
	stmts := []string{schemaMigrationsDDL}
	for _, m := range ms {
		stmts = append(stmts, m.Statements...)
	}
	var tables, views int
	for _, stmt := range stmts {
		got, err := plain.renderDDL(stmt)
		if err != nil || got != plain.render(stmt) {
			t.Errorf("plain renderDDL(%.40q) = %q, %v; want render's output", stmt, got, err)
		}
		got, err = clustered.renderDDL(stmt)
		if err != nil {
			t.Errorf("cluster renderDDL: %v", err)
			continue
		}
		if !strings.Contains(got, " ON CLUSTER `dpinstruct` ") {
			t.Errorf("cluster DDL lacks ON CLUSTER:\n%s", got)
		}
		switch {
		case strings.HasPrefix(got, "CREATE TABLE"):
			tables++
			if !strings.Contains(got, "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/dpi/") &&
				!strings.Contains(got, "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/dpi/") {
				t.Errorf("cluster DDL not replicated:\n%s", got)
			}
		case strings.HasPrefix(got, "CREATE VIEW"):
			views++
		default:
			t.Errorf("unexpected statement:\n%s", got)
		}
	}
	if tables+views != wantTables || views != 4 {
		t.Errorf("rendered %d tables and %d views, want %d in all, 4 views", tables, views, wantTables)
	}
}

func TestConfigRejectsBadClusterName(t *testing.T) {
	t.Parallel()
	_, _, _, err := Config{DSN: "clickhouse://127.0.0.1:9000/db", Cluster: "a b"}.options()
	if err == nil || !strings.Contains(err.Error(), "cluster name") {
		t.Fatalf("options() = %v, want a cluster name error", err)
	}
}

// testCluster is a private ZooKeeper and two ClickHouse servers on loopback,
// replicas of the one shard of cluster "dpinstruct", started with the
// deploy/local scripts.
type testCluster struct {
	dsn [2]string
}

const testClusterName = "dpinstruct"

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func runScript(t *testing.T, script string, env []string, arg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("..", "deploy", "local", script), arg)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, arg, err, out)
	}
}

func startTestCluster(t *testing.T) *testCluster {
	t.Helper()
	dir := t.TempDir()
	zkEnv := []string{
		"DPINSTRUCT_ZK_DIR=" + filepath.Join(dir, "zookeeper"),
		"DPINSTRUCT_ZK_PORT=" + strconv.Itoa(freePort(t)),
	}
	zkAddr := "127.0.0.1:" + strings.TrimPrefix(zkEnv[1], "DPINSTRUCT_ZK_PORT=")
	t.Cleanup(func() { runScript(t, "zookeeper.sh", zkEnv, "stop") })
	runScript(t, "zookeeper.sh", zkEnv, "start")

	var ports [2]int
	for i := range ports {
		ports[i] = freePort(t)
	}
	replicas := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", ports[0], ports[1])
	tc := &testCluster{}
	for i, port := range ports {
		env := []string{
			"DPINSTRUCT_CH_DIR=" + filepath.Join(dir, fmt.Sprintf("clickhouse%d", i+1)),
			"DPINSTRUCT_CH_PORT=" + strconv.Itoa(port),
			"DPINSTRUCT_CH_HTTP_PORT=" + strconv.Itoa(freePort(t)),
			"DPINSTRUCT_CH_INTERSERVER_PORT=" + strconv.Itoa(freePort(t)),
			"DPINSTRUCT_CH_TLS_PORT=", "DPINSTRUCT_CH_USER=",
			"DPINSTRUCT_CH_CLUSTER=" + testClusterName,
			"DPINSTRUCT_CH_CLUSTER_REPLICAS=" + replicas,
			"DPINSTRUCT_CH_ZOOKEEPER=" + zkAddr,
			"DPINSTRUCT_CH_SHARD=1",
			fmt.Sprintf("DPINSTRUCT_CH_REPLICA=replica%d", i+1),
		}
		t.Cleanup(func() { runScript(t, "clickhouse.sh", env, "stop") })
		runScript(t, "clickhouse.sh", env, "start")
		tc.dsn[i] = fmt.Sprintf("clickhouse://default@127.0.0.1:%d/default", port)
	}
	return tc
}

func openClusterClient(t *testing.T, dsn, db string) *Client {
	t.Helper()
	c, err := Open(testCtx(t), Config{DSN: dsn, Database: db, Cluster: testClusterName})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// eventually polls query on c until it returns want (replication is
// asynchronous) or 20s pass.
func eventually(t *testing.T, c *Client, want uint64, query string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n uint64
		err := c.Conn().QueryRow(testCtx(t), query, args...).Scan(&n)
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s = %d, %v; want %d", query, c.addr, n, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClusterReplicatedDDLAndDedup runs cluster mode for real: ZooKeeper and
// two replicas of one shard on loopback. DDL sent to one server creates
// replicated tables on both, a window written through one is read back from
// the other, and the same insert retried through the other replica is
// deduplicated by ClickHouse (one copy even without FINAL).
func TestClusterReplicatedDDLAndDedup(t *testing.T) {
	testDSN(t) // runs where the other ClickHouse tests run
	if testing.Short() {
		t.Skip("starts ZooKeeper and two ClickHouse servers; skipped in -short")
	}
	tc := startTestCluster(t)
	db := "dpi_cluster_" + randomSuffix(t)
	c1 := openClusterClient(t, tc.dsn[0], db)
	c2 := openClusterClient(t, tc.dsn[1], db)
	ctx := testCtx(t)

	applied, err := c1.Migrate(ctx)
	if err != nil {
		t.Fatalf("migrate through server 1: %v", err)
	}
	names, _ := MigrationNames()
	if !reflect.DeepEqual(applied, names) {
		t.Errorf("migrate applied %v, want %v", applied, names)
	}
	// ON CLUSTER DDL waits for every host, so server 2 has it all now.
	for i, c := range []*Client{c1, c2} {
		if n := count(t, c, "SELECT count() FROM system.tables WHERE database = ?", db); n != wantTables {
			t.Errorf("server %d: %d tables, want %d", i+1, n, wantTables)
		}
		if n := count(t, c, "SELECT count() FROM system.tables WHERE database = ? AND engine NOT LIKE 'Replicated%' AND engine != 'View'", db); n != 0 {
			t.Errorf("server %d: %d tables are neither replicated nor views", i+1, n)
		}
		if n := count(t, c, "SELECT count() FROM system.tables WHERE database = ? AND engine = 'View'", db); n != 4 {
			t.Errorf("server %d: %d views, want 4", i+1, n)
		}
	}
	// schema_migrations is replicated: server 2 sees the schema as current.
	eventually(t, c2, uint64(len(names)), "SELECT count() FROM "+c2.table("schema_migrations")+" FINAL")
	if err := c2.CheckSchema(ctx); err != nil {
		t.Errorf("CheckSchema on server 2: %v", err)
	}
	if again, err := c2.Migrate(ctx); err != nil || len(again) != 0 {
		t.Errorf("migrate through server 2 = %v, %v; want nothing to do", again, err)
	}

	w := testWindow("wc", Range{"in", 0, 0, 99})
	w.ClosedAt = time.Now().Truncate(time.Second)
	w.WrittenAt = w.ClosedAt
	w.Records = 100
	if err := c1.PlanWindow(ctx, w); err != nil {
		t.Fatal(err)
	}
	const n = 300
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = Row{Seq: uint32(i), Text: fmt.Sprintf("synthetic %d", i), Cluster: int32(i % 5),
			GeneratorVersion: "gen-1", Epsilon: 1.5, Delta: 1e-6}
	}
	if err := c1.WriteWindow(ctx, w, rows); err != nil {
		t.Fatalf("WriteWindow through server 1: %v", err)
	}
	eventually(t, c2, n, "SELECT count() FROM "+c2.table("synthetic_instructions")+" FINAL")
	eventually(t, c2, n, "SELECT count() FROM "+c2.table("published_instructions"))

	// A retry of the same batch through the other replica: replicated block
	// dedup stores it once, even without FINAL.
	if err := c2.WriteWindow(ctx, w, rows); err != nil {
		t.Fatalf("WriteWindow retried through server 2: %v", err)
	}
	for i, c := range []*Client{c1, c2} {
		// Wait until each replica has fetched every part the other made.
		for _, table := range []string{"synthetic_instructions", "windows"} {
			if err := c.Conn().Exec(ctx, "SYSTEM SYNC REPLICA "+c.table(table)); err != nil {
				t.Fatalf("server %d: sync replica %s: %v", i+1, table, err)
			}
		}
		if got := count(t, c, "SELECT count() FROM "+c.table("synthetic_instructions")); got != n {
			t.Errorf("server %d: %d synthetic rows without FINAL, want %d (retried insert not deduplicated)", i+1, got, n)
		}
		// Level-0 parts are inserted (or fetched) blocks; merged ones stay
		// listed, inactive, for minutes, so a merge cannot hide a duplicate.
		if got := count(t, c, "SELECT count() FROM system.parts WHERE database = ? AND table = 'synthetic_instructions' AND level = 0", db); got != 1 {
			t.Errorf("server %d: %d inserted parts of synthetic_instructions, want 1", i+1, got)
		}
		if got := count(t, c, "SELECT count() FROM "+c.table("published_instructions")); got != n {
			t.Errorf("server %d: %d published rows, want %d", i+1, got, n)
		}
	}
}
