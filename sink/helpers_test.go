package sink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/internal/serverwatch"
)

const (
	dsnEnv = "DPINSTRUCT_CLICKHOUSE_DSN"
	// clusterEnv and peerDSNEnv run the integration tests against a cluster
	// (deploy/local/cluster.sh env sets all three, make test does): every
	// test database is created in cluster mode, and the clients that stand
	// for a second process connect to the peer server, on another shard.
	clusterEnv = "DPINSTRUCT_CLICKHOUSE_CLUSTER"
	peerDSNEnv = "DPINSTRUCT_CLICKHOUSE_PEER_DSN"
)

// testDSN returns the DSN of the real server the integration tests use, or
// skips the test.
func testDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		tb.Skipf("%s not set: start a local server with `deploy/local/clickhouse.sh start` and "+
			"export %s=clickhouse://default@127.0.0.1:19000/default", dsnEnv, dsnEnv)
	}
	serverwatch.ReportOnFailure(tb)
	return dsn
}

// peerDSN is the server a second process connects to: the peer server in
// a cluster run, the same one otherwise.
func peerDSN(tb testing.TB) string {
	tb.Helper()
	if dsn := os.Getenv(peerDSNEnv); dsn != "" {
		return dsn
	}
	return testDSN(tb)
}

func testCtx(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

func randomSuffix(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newTestDB opens a client on a fresh, uniquely named database that is
// dropped when the test ends, so tests can run in parallel. The database is
// migrated when migrate is true.
func newTestDB(tb testing.TB, migrate bool) *Client {
	tb.Helper()
	dsn := testDSN(tb)
	db := "dpi_test_" + randomSuffix(tb)
	c := openTestClient(tb, dsn, db)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		drop := "DROP DATABASE IF EXISTS `" + db + "`"
		if c.cfg.Cluster != "" {
			drop += onCluster(c.cfg.Cluster)
		}
		if err := c.Conn().Exec(ctx, drop); err != nil {
			tb.Errorf("drop test database %s: %v", db, err)
		}
	})
	if migrate {
		if _, err := c.Migrate(testCtx(tb)); err != nil {
			tb.Fatalf("migrate: %v", err)
		}
	}
	return c
}

// openTestClient opens another client on an existing database (a second
// "process" for concurrency and visibility tests), in cluster mode when the
// tests run against a cluster.
func openTestClient(tb testing.TB, dsn, db string) *Client {
	tb.Helper()
	c, err := Open(testCtx(tb), Config{DSN: dsn, Database: db, Cluster: os.Getenv(clusterEnv)})
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func count(tb testing.TB, c *Client, query string, args ...any) uint64 {
	tb.Helper()
	var n uint64
	if err := c.Conn().QueryRow(testCtx(tb), query, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

func testWindow(id string, ranges ...Range) Window {
	return Window{
		ID:                id,
		Group:             "g1",
		Owner:             "worker-a",
		LeaseUntil:        time.Now().Add(time.Minute).Truncate(time.Second),
		Ranges:            ranges,
		ConfiguredRecords: 1000,
		OpenedAt:          time.Now().Add(-time.Minute).Truncate(time.Second),
		Processor:         "dp-kmeans",
		Params:            `{"k":8}`,
		Epsilon:           1.5,
		Delta:             1e-6,
	}
}
