package sink

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/internal/serverwatch"

	"github.com/dpinstruct/dpinstruct/internal/golden"
)

func TestRenderCluster(t *testing.T) {
	t.Parallel()
	keys := map[string]string{"t": "cityHash64(a)", "w": "cityHash64(v)", "x": "cityHash64(a)"}
	const dist = "\nENGINE = Distributed(`c`, `d`, "
	tests := []struct {
		name, in, wantErr string
		want              []string
	}{
		{
			name: "MergeTree",
			in:   "CREATE TABLE IF NOT EXISTS `d`.t (\n    a String\n) ENGINE = MergeTree\nORDER BY a",
			want: []string{
				"CREATE TABLE IF NOT EXISTS `d`.`t_local` ON CLUSTER `c` (\n    a String\n) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t_local', '{replica}')\nORDER BY a",
				"CREATE TABLE IF NOT EXISTS `d`.`t` ON CLUSTER `c` AS `d`.`t_local`" + dist + "`t_local`, cityHash64(a))",
			},
		},
		{
			name: "ReplacingMergeTree with version",
			in:   "CREATE TABLE IF NOT EXISTS `d`.w (\n    v UInt64\n) ENGINE = ReplacingMergeTree(v)\nORDER BY v",
			want: []string{
				"CREATE TABLE IF NOT EXISTS `d`.`w_local` ON CLUSTER `c` (\n    v UInt64\n) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/w_local', '{replica}', v)\nORDER BY v",
				"CREATE TABLE IF NOT EXISTS `d`.`w` ON CLUSTER `c` AS `d`.`w_local`" + dist + "`w_local`, cityHash64(v))",
			},
		},
		{
			name: "empty parentheses, no IF NOT EXISTS",
			in:   "CREATE TABLE `d`.`x` (a UInt8) ENGINE = ReplacingMergeTree() ORDER BY a",
			want: []string{
				"CREATE TABLE `d`.`x_local` ON CLUSTER `c` (a UInt8) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/x_local', '{replica}') ORDER BY a",
				"CREATE TABLE `d`.`x` ON CLUSTER `c` AS `d`.`x_local`" + dist + "`x_local`, cityHash64(a))",
			},
		},
		{
			name: "view with subqueries",
			in:   "CREATE VIEW IF NOT EXISTS `d`.v AS\nSELECT a FROM `d`.t FINAL WHERE (a, b) IN\n(\n    SELECT a, b FROM `d`.w\n) AND a NOT IN (SELECT a FROM `d`.x) AND a IN (1, 2)",
			want: []string{"CREATE VIEW IF NOT EXISTS `d`.`v` ON CLUSTER `c` AS\nSELECT a FROM `d`.t FINAL WHERE (a, b) GLOBAL IN\n(\n    SELECT a, b FROM `d`.w\n) AND a GLOBAL NOT IN (SELECT a FROM `d`.x) AND a IN (1, 2)"},
		},
		{
			name: "alter",
			in:   "ALTER TABLE `d`.t ADD COLUMN b String",
			want: []string{
				"ALTER TABLE `d`.`t_local` ON CLUSTER `c` ADD COLUMN b String",
				"DROP TABLE IF EXISTS `d`.`t` ON CLUSTER `c`",
				"CREATE TABLE IF NOT EXISTS `d`.`t` ON CLUSTER `c` AS `d`.`t_local`" + dist + "`t_local`, cityHash64(a))",
			},
		},
		{name: "already replicated", in: "CREATE TABLE `d`.x (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a", wantErr: "plain MergeTree"},
		{name: "alter of unknown table", in: "ALTER TABLE `d`.y ADD COLUMN b String", wantErr: "no sharding key"},
		{name: "other engine", in: "CREATE TABLE `d`.t (a UInt8) ENGINE = Memory", wantErr: "only MergeTree-family"},
		{name: "no engine", in: "CREATE TABLE `d`.t (a UInt8)", wantErr: "no ENGINE"},
		{name: "other database", in: "CREATE TABLE `e`.t (a UInt8) ENGINE = MergeTree ORDER BY a", wantErr: "cannot run statement on cluster"},
		{name: "insert", in: "INSERT INTO `d`.t VALUES (1)", wantErr: "cannot run statement on cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := renderCluster(tt.in, "d", "c", keys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("renderCluster = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("renderCluster =\n%s\n%v\nwant\n%s", strings.Join(got, "\n--\n"), err, strings.Join(tt.want, "\n--\n"))
			}
		})
	}
}

// plainInRe finds the word before an IN subquery.
var plainInRe = regexp.MustCompile(`(\S+)\s+(?:NOT\s+)?IN\s*\(\s*SELECT`)

func TestShardingKeys(t *testing.T) {
	t.Parallel()
	keys, err := shardingKeys([]string{
		"CREATE TABLE IF NOT EXISTS `d`.a (x String, y Int32) ENGINE = MergeTree\nORDER BY (x, `y`)",
		"CREATE TABLE `d`.`b` (x String) ENGINE = ReplacingMergeTree(v)\nORDER BY x",
		"CREATE VIEW `d`.v AS SELECT 1",
		"ALTER TABLE `d`.a ADD COLUMN z String",
	}, "d")
	want := map[string]string{"a": "cityHash64(x, `y`)", "b": "cityHash64(x)"}
	if err != nil || !reflect.DeepEqual(keys, want) {
		t.Errorf("shardingKeys = %v, %v; want %v", keys, err, want)
	}
	if _, err := shardingKeys([]string{"CREATE TABLE `d`.a (x String) ENGINE = MergeTree"}, "d"); err == nil {
		t.Error("a table without ORDER BY: no error")
	}
}

// Every embedded migration renders in cluster mode (a new migration that
// cannot fails here, not on a user's cluster), the rendered DDL is pinned by
// a golden file (review it when a migration is added), and without a cluster
// the DDL is exactly what render gives.
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
	renderPlain, err := plain.ddlRenderer(ms)
	if err != nil {
		t.Fatal(err)
	}
	renderClustered, err := clustered.ddlRenderer(ms)
	if err != nil {
		t.Fatal(err)
	}
	var views int
	// Distributed tables by name: an ALTER re-creates its table's.
	tables := map[string]bool{}
	var all strings.Builder
	for _, stmt := range stmts {
		got, err := renderPlain(stmt)
		if err != nil || len(got) != 1 || got[0] != plain.render(stmt) {
			t.Errorf("plain renderDDL(%.40q) = %q, %v; want render's output", stmt, got, err)
		}
		got, err = renderClustered(stmt)
		if err != nil {
			t.Errorf("cluster renderDDL: %v", err)
			continue
		}
		for _, q := range got {
			all.WriteString(q + ";\n\n")
			if !strings.Contains(q, " ON CLUSTER `dpinstruct`") {
				t.Errorf("cluster DDL lacks ON CLUSTER:\n%s", q)
			}
			switch {
			case strings.Contains(q, "ENGINE = Distributed(`dpinstruct`, `dpi`, "):
				head, _, _ := strings.Cut(q, " ON CLUSTER")
				tables[head[strings.LastIndex(head, " ")+1:]] = true
			case strings.HasPrefix(q, "ALTER TABLE `dpi`.`") && strings.Contains(q, "_local` ON CLUSTER"),
				strings.HasPrefix(q, "DROP TABLE IF EXISTS `dpi`.`"):
			case strings.HasPrefix(q, "CREATE TABLE"):
				if !strings.Contains(q, "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/dpi/") &&
					!strings.Contains(q, "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/dpi/") {
					t.Errorf("cluster DDL not replicated:\n%s", q)
				}
			case strings.HasPrefix(q, "CREATE VIEW"):
				views++
				if m := plainInRe.FindStringSubmatch(q); m != nil && m[1] != "GLOBAL" {
					t.Errorf("view keeps a plain IN subquery:\n%s", q)
				}
			default:
				t.Errorf("unexpected statement:\n%s", q)
			}
		}
	}
	if len(tables)+views != wantTables || views != wantViews {
		t.Errorf("rendered %d distributed tables and %d views, want %d in all, %d views", len(tables), views, wantTables, wantViews)
	}
	want := golden.Read(t, "testdata/migrations_cluster.golden", []byte(all.String()))
	if all.String() != string(want) {
		t.Errorf("cluster DDL changed (run with -update and review testdata/migrations_cluster.golden):\n%s", all.String())
	}
}

func TestConfigRejectsBadClusterName(t *testing.T) {
	t.Parallel()
	_, _, _, err := Config{DSN: "clickhouse://127.0.0.1:9000/db", Cluster: "a b"}.options()
	if err == nil || !strings.Contains(err.Error(), "cluster name") {
		t.Fatalf("options() = %v, want a cluster name error", err)
	}
}

// testCluster is a private ZooKeeper and ClickHouse servers on loopback,
// started with deploy/local/cluster.sh.
type testCluster struct {
	dir string   // cluster.sh's state directory
	dsn []string // shard by shard, replica by replica
}

const testClusterName = "dpinstruct"

// freePortBlock returns a port p such that p and the n ports after it are
// free now (cluster.sh puts ZooKeeper on p and the servers above it). The
// block lies below Linux's ephemeral range (32768 and up), so an outgoing
// connection cannot take one of its ports before the servers bind them.
func freePortBlock(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		base := 20000 + mrand.IntN(32000-20000-n)
		free := true
		for p := base; p <= base+n && free; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				continue
			}
			l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no block of free ports")
	return 0
}

func runScript(t *testing.T, script string, env []string, arg string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("..", "deploy", "local", script), arg)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = new(strings.Builder)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", script, arg, err, out, cmd.Stderr)
	}
	return out
}

// startTestCluster starts ZooKeeper and shards x replicas servers of
// cluster "dpinstruct", stopped when the test ends.
func startTestCluster(t *testing.T, shards, replicas int) *testCluster {
	t.Helper()
	dir := t.TempDir()
	env := []string{
		"DPINSTRUCT_CLUSTER_DIR=" + dir,
		"DPINSTRUCT_CLUSTER_NAME=" + testClusterName,
		"DPINSTRUCT_CLUSTER_SHARDS=" + strconv.Itoa(shards),
		"DPINSTRUCT_CLUSTER_REPLICAS=" + strconv.Itoa(replicas),
		"DPINSTRUCT_CLUSTER_PORT=" + strconv.Itoa(freePortBlock(t, 10*shards*replicas+2)),
	}
	t.Cleanup(func() { runScript(t, "cluster.sh", env, "stop") })
	// Registered after the stop above, so it runs before it: a server
	// that died during the test is reported with its log, not only as a
	// later "connection refused".
	servers := []string{filepath.Join(dir, "zookeeper")} // cluster.sh's layout
	for k := 1; k <= shards*replicas; k++ {
		servers = append(servers, filepath.Join(dir, "clickhouse"+strconv.Itoa(k)))
	}
	serverwatch.ReportOnFailure(t, servers...)
	out := runScript(t, "cluster.sh", env, "start")
	return &testCluster{dir: dir, dsn: strings.Fields(string(out))}
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

// clusterClients starts a cluster of two servers (shards x replicas = 2)
// and opens a cluster-mode client on each, on one fresh database. It runs
// where the other ClickHouse tests run, and not in -short.
func clusterClients(t *testing.T, shards, replicas int) (tc *testCluster, db string, c1, c2 *Client) {
	t.Helper()
	testDSN(t)
	if testing.Short() {
		t.Skip("starts ZooKeeper and two ClickHouse servers; skipped in -short")
	}
	tc = startTestCluster(t, shards, replicas)
	db = "dpi_cluster_" + randomSuffix(t)
	return tc, db, openClusterClient(t, tc.dsn[0], db), openClusterClient(t, tc.dsn[1], db)
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
	tc, db, c1, c2 := clusterClients(t, 1, 2)
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
		for _, q := range []struct {
			what, where string
			want        uint64
		}{
			{"replicated tables", "engine LIKE 'Replicated%' AND name LIKE '%_local'", wantTables - wantViews},
			{"distributed tables", "engine = 'Distributed' AND name NOT LIKE '%_local'", wantTables - wantViews},
			{"views", "engine = 'View'", wantViews},
			{"entries", "1", wantTablesIn(c)},
		} {
			if n := count(t, c, "SELECT count() FROM system.tables WHERE database = ? AND "+q.where, db); n != q.want {
				t.Errorf("server %d: %d %s, want %d", i+1, n, q.what, q.want)
			}
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
			if err := c.Conn().Exec(ctx, "SYSTEM SYNC REPLICA "+c.table(table+localSuffix)); err != nil {
				t.Fatalf("server %d: sync replica %s: %v", i+1, table, err)
			}
		}
		if got := count(t, c, "SELECT count() FROM "+c.table("synthetic_instructions"+localSuffix)); got != n {
			t.Errorf("server %d: %d synthetic rows without FINAL, want %d (retried insert not deduplicated)", i+1, got, n)
		}
		// Level-0 parts are inserted (or fetched) blocks; merged ones stay
		// listed, inactive, for minutes, so a merge cannot hide a duplicate.
		if got := count(t, c, "SELECT count() FROM system.parts WHERE database = ? AND table = 'synthetic_instructions_local' AND level = 0", db); got != 1 {
			t.Errorf("server %d: %d inserted parts of synthetic_instructions, want 1", i+1, got)
		}
		if got := count(t, c, "SELECT count() FROM "+c.table("published_instructions")); got != n {
			t.Errorf("server %d: %d published rows, want %d", i+1, got, n)
		}
	}

	// Without load_balancing=in_order a process could read a replica that
	// has not fetched what another process wrote: Open refuses. The server
	// re-reads its users file within seconds.
	users := filepath.Join(tc.dir, "clickhouse1", "etc", "users.xml")
	b, err := os.ReadFile(users)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, []byte(strings.Replace(string(b), "in_order", "random", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := Open(ctx, Config{DSN: tc.dsn[0], Database: db, Cluster: testClusterName})
		if err != nil {
			if !strings.Contains(err.Error(), `load_balancing is "random"`) {
				t.Fatalf("Open with load_balancing=random: %v; want the load_balancing error", err)
			}
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("Open kept accepting a cluster with replicas and load_balancing=random")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestClusterShardedWritesSplitAndDedup runs cluster mode on two shards of
// one replica each. A window written through server 1 is split between the
// shards by the sorting key, every server reads all of it (FINAL, the
// published view and the ledger), and the same insert retried through
// server 2 still leaves one copy: the retry splits into the same per-shard
// blocks, which each shard's replicated table deduplicates.
func TestClusterShardedWritesSplitAndDedup(t *testing.T) {
	_, _, c1, c2 := clusterClients(t, 2, 1)
	ctx := testCtx(t)
	if _, err := c1.Migrate(ctx); err != nil {
		t.Fatalf("migrate through server 1: %v", err)
	}
	if err := c2.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema on server 2: %v", err)
	}

	const n = 300
	var windows []Window
	for k := range 4 {
		w := testWindow(fmt.Sprintf("ws%d", k), Range{"in", int32(k), 0, 99})
		w.ClosedAt = time.Now().Truncate(time.Second)
		w.WrittenAt = w.ClosedAt
		w.Records = 100
		if err := c1.PlanWindow(ctx, w); err != nil {
			t.Fatal(err)
		}
		rows := make([]Row, n)
		for i := range rows {
			rows[i] = Row{Seq: uint32(i), Text: fmt.Sprintf("synthetic %d/%d", k, i), Cluster: int32(i % 5),
				GeneratorVersion: "gen-1", Epsilon: 1.5, Delta: 1e-6}
		}
		if err := c1.WriteWindow(ctx, w, rows); err != nil {
			t.Fatalf("WriteWindow through server 1: %v", err)
		}
		if err := c2.WriteWindow(ctx, w, rows); err != nil {
			t.Fatalf("WriteWindow retried through server 2: %v", err)
		}
		windows = append(windows, w)
	}
	const total = 4 * n
	for i, c := range []*Client{c1, c2} {
		// Inserts are synchronous: no waiting.
		local := count(t, c, "SELECT count() FROM "+c.table("synthetic_instructions"+localSuffix))
		if local == 0 || local == total {
			t.Errorf("server %d holds %d of %d rows: not split between the shards", i+1, local, total)
		}
		for _, q := range []string{
			"SELECT count() FROM " + c.table("synthetic_instructions"),
			"SELECT count() FROM " + c.table("synthetic_instructions") + " FINAL",
			"SELECT count() FROM " + c.table("published_instructions"),
			"SELECT sum(instructions) FROM " + c.table("synthetic_per_window"),
		} {
			if got := count(t, c, q); got != total {
				t.Errorf("server %d: %s = %d, want %d", i+1, q, got, total)
			}
		}
		for _, w := range windows {
			got, ok, err := c.Window(ctx, w.ID)
			if err != nil || !ok || got.Status != StatusWritten {
				t.Errorf("server %d: window %s = %+v, %v, %v; want written", i+1, w.ID, got.Status, ok, err)
			}
		}
	}
	if a, b := count(t, c1, "SELECT count() FROM "+c1.table("synthetic_instructions"+localSuffix)),
		count(t, c2, "SELECT count() FROM "+c2.table("synthetic_instructions"+localSuffix)); a+b != total {
		t.Errorf("shards hold %d + %d rows, want %d in all (retried inserts stored twice?)", a, b, total)
	}
}
