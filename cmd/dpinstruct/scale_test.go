package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestThreeReplicasSplitPartitionsAndSurviveAKill runs three connectors in
// one consumer group on a six-partition topic. The consumer group splits
// the partitions; one replica is SIGKILLed while it holds a planned window
// (it blocks at the after-plan fault). The others take its partitions over
// once the group notices, replay its window under the same id, and finish:
// every record lands in exactly one written window, every written window's
// attempt is charged in the privacy ledger with the partition it covered,
// and each window covers a single partition.
func TestThreeReplicasSplitPartitionsAndSurviveAKill(t *testing.T) {
	dsn := needClickHouse(t)
	db, dbName, conn := freshDatabase(t, dsn)
	addr := startBroker(t, 6)
	produceRecords(t, addr, "instr", 6000, "")
	ends := partitionEnds(t, addr, "instr")
	base := e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, maxRecords: 400, maxDuration: 5 * time.Second, epsilon: 1}
	var procs []*proc
	for i, name := range []string{"inst-a", "inst-b", "inst-c"} {
		c := base
		c.instance = name
		var env []string
		if i == 1 {
			env = []string{"DPINSTRUCT_FAULT=after-plan:1"}
			// In a cluster run the victim talks to another shard's server.
			c.dsn = peerDSN(t, c.dsn)
		}
		procs = append(procs, startProc(t, env, "run", "--config", writeE2EConfig(t, c)))
	}
	victim := procs[1]
	victim.waitFor("FAULT after-plan", 2*time.Minute)
	victim.signal(syscall.SIGKILL)
	victim.wait(30 * time.Second)

	awaitAllWritten(t, conn, dbName, ends, 4*time.Minute, procs[0], procs[2])
	for _, p := range []*proc{procs[0], procs[2]} {
		p.signal(syscall.SIGTERM)
		if code := p.wait(time.Minute); code != 0 {
			t.Errorf("exit %d after SIGTERM:\n%s", code, p.output())
		}
	}
	ws := checkExactlyOnce(t, conn, dbName, ends)
	if testCluster != "" {
		// A cluster run really went through Distributed tables.
		var engine string
		if err := conn.QueryRow(context.Background(), "SELECT engine FROM system.tables WHERE database = ? AND name = 'windows'", dbName).Scan(&engine); err != nil || engine != "Distributed" {
			t.Errorf("windows table engine = %q, %v; want Distributed in a cluster run", engine, err)
		}
	}

	// The ledger: every written window's published attempt was charged,
	// for the partition the window covered.
	rows, err := conn.Query(context.Background(), fmt.Sprintf(`
		SELECT w.window_id, w.partitions, l.partitions, l.epsilon
		FROM (SELECT window_id, attempt, partitions FROM %[1]s.windows FINAL WHERE status = 'written') AS w
		LEFT JOIN (SELECT window_id, attempt, partitions, epsilon FROM %[1]s.privacy_ledger WHERE group_id = 'g') AS l
		USING (window_id, attempt)`, dbName))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id string
		var wp, lp []int32
		var eps float64
		if err := rows.Scan(&id, &wp, &lp, &eps); err != nil {
			t.Fatal(err)
		}
		n++
		if len(wp) != 1 || len(lp) != 1 || wp[0] != lp[0] || eps != 1 {
			t.Errorf("window %s covers partitions %v, its charge %v at epsilon %g", id, wp, lp, eps)
		}
	}
	if n != len(ws) {
		t.Errorf("%d written windows joined with the ledger, want %d", n, len(ws))
	}
	replayed := false
	for _, p := range []*proc{procs[0], procs[2]} {
		replayed = replayed || strings.Contains(p.output(), "replaying a planned window")
	}
	if !replayed {
		t.Errorf("no survivor replayed the killed replica's window")
	}
}
