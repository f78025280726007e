package connector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/internal/serverwatch"

	"github.com/dpinstruct/dpinstruct/sink"
)

// TestSimultaneousTakeoverHasOneWinner: three instances find the same
// planned window with a lapsed lease at the same moment. Exactly one takes
// it over; the others keep waiting on the winner's lease (here until their
// context ends), so the window is processed (and charged) once.
func TestSimultaneousTakeoverHasOneWinner(t *testing.T) {
	admin, open, plan, key := leaseSetup(t, time.Now().Add(-time.Minute))
	ctx := context.Background()

	const instances = 3
	type result struct {
		owner string
		err   error
	}
	results := make([]result, instances)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range instances {
		c := leaseConnector(open(), "inst-"+string(rune('a'+i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Longer than a takeover (one settle), shorter than the lease.
			actx, cancel := context.WithTimeout(ctx, 8*time.Second)
			defer cancel()
			got, err := c.awaitLease(actx, plan, key)
			results[i] = result{got.Owner, err}
		}()
	}
	close(start)
	wg.Wait()
	var winners []string
	for i, r := range results {
		switch {
		case r.err == nil:
			if r.owner != "inst-"+string(rune('a'+i)) {
				t.Errorf("instance %d returned a plan owned by %q", i, r.owner)
			}
			winners = append(winners, r.owner)
		case !errors.Is(r.err, context.DeadlineExceeded):
			t.Errorf("instance %d: %v", i, r.err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d instances took the window over (%v), want exactly 1", len(winners), winners)
	}
	got, ok, err := admin.Window(ctx, plan.ID)
	if err != nil || !ok || got.Owner != winners[0] {
		t.Errorf("ledger names owner %q (%v, %v), want the winner %s", got.Owner, ok, err, winners[0])
	}
}

// TestShutdownEndsALeaseWait: an instance waiting on another's live lease
// holds nothing (no charge, no offsets), so a shutdown ends the wait at
// once rather than after shutdown_timeout, even though the work context
// lives on.
func TestShutdownEndsALeaseWait(t *testing.T) {
	_, open, plan, key := leaseSetup(t, time.Now().Add(time.Minute))
	c := leaseConnector(open(), "inst-waiting")
	shutdown, stop := context.WithCancel(context.Background())
	c.shutdown = shutdown
	time.AfterFunc(500*time.Millisecond, stop)
	start := time.Now()
	_, err := c.awaitLease(context.Background(), plan, key)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 10*time.Second {
		t.Errorf("awaitLease = %v after %s; want context.Canceled soon after the shutdown", err, time.Since(start))
	}
}

// leaseConnector is just enough of a connector for awaitLease.
func leaseConnector(ledger Ledger, instance string) *Connector {
	cfg := DefaultConfig()
	cfg.Kafka.GroupID = "g"
	cfg.Instance = instance
	cfg.Window.Lease = 20 * time.Second
	cfg.Window.PlanSettle = 1500 * time.Millisecond
	return &Connector{cfg: cfg, deps: Deps{Ledger: ledger, Metrics: NewMetrics()},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// freshSink is a client on a fresh, migrated database (see freshDatabase).
func freshSink(t *testing.T) *sink.Client {
	t.Helper()
	admin, _ := freshDatabase(t)
	if _, err := admin.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return admin
}

// freshDatabase names a fresh database, dropped after the test, and opens
// a client on it (not migrated); open opens another. It skips the test
// without a server.
func freshDatabase(t *testing.T) (admin *sink.Client, open func() *sink.Client) {
	t.Helper()
	dsn := os.Getenv("DPINSTRUCT_CLICKHOUSE_DSN")
	if dsn == "" || testing.Short() {
		t.Skip("needs ClickHouse (DPINSTRUCT_CLICKHOUSE_DSN; make test sets it)")
	}
	serverwatch.ReportOnFailure(t)
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	db := "dpi_lease_" + hex.EncodeToString(suffix)
	ctx := context.Background()
	open = func() *sink.Client {
		t.Helper()
		c, err := sink.Open(ctx, sink.Config{DSN: dsn, Database: db, Cluster: os.Getenv("DPINSTRUCT_CLICKHOUSE_CLUSTER")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	admin = open()
	t.Cleanup(func() {
		drop := "DROP DATABASE IF EXISTS " + db
		if cl := os.Getenv("DPINSTRUCT_CLICKHOUSE_CLUSTER"); cl != "" {
			drop += " ON CLUSTER " + cl
		}
		_ = admin.Conn().Exec(context.Background(), drop)
	})
	return admin, open
}

// leaseSetup migrates a fresh database (dropped after the test) and plans
// one window owned by "crashed" whose lease ends at leaseUntil. open opens
// another client on it.
func leaseSetup(t *testing.T, leaseUntil time.Time) (admin *sink.Client, open func() *sink.Client, plan sink.Window, key partitionKey) {
	t.Helper()
	admin, open = freshDatabase(t)
	ctx := context.Background()
	if _, err := admin.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	key = partitionKey{topic: "in", partition: 0}
	ranges := []sink.Range{{Topic: "in", Partition: 0, First: 0, Last: 99}}
	plan = sink.Window{ID: WindowID("g", ranges), Group: "g", Owner: "crashed", Ranges: ranges,
		LeaseUntil: leaseUntil.Truncate(time.Second), ConfiguredRecords: 100,
		OpenedAt: time.Now().Add(-2 * time.Minute).Truncate(time.Second), Processor: "count", Params: "{}"}
	if err := admin.PlanWindow(ctx, plan); err != nil {
		t.Fatal(err)
	}
	return admin, open, plan, key
}
