package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOutputTopicGetsEachWindowExactlyOnce: with kafka.output_topic set,
// the connector is SIGKILLed after producing half of the second window's
// messages; the restarted connector reads the output partition back and
// sends only the missing half. Every published row is in the output topic
// exactly once, keyed by its window.
func TestOutputTopicGetsEachWindowExactlyOnce(t *testing.T) {
	dsn := needClickHouse(t)
	db, dbName, conn := freshDatabase(t, dsn)
	addr := startBroker(t, 1)
	produceRecords(t, addr, "instr", 3000, "")
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a",
		maxRecords: 1000, outputTopic: "instr.synthetic"})

	first := startProc(t, []string{"DPINSTRUCT_FAULT=mid-output:2"}, "run", "--config", cfg)
	first.waitFor("FAULT mid-output", 2*time.Minute)
	first.signal(syscall.SIGKILL)
	first.wait(30 * time.Second)

	second := startProc(t, nil, "run", "--config", cfg, "--max-windows", "1")
	if code := second.wait(2 * time.Minute); code != 0 {
		t.Fatalf("restart: exit %d:\n%s", code, second.output())
	}
	ws := checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
	var want int
	for _, w := range ws {
		want += int(w.outputRows)
	}
	// The partition's end offset counts every message ever produced to it,
	// so a duplicate cannot hide.
	if end := partitionEnds(t, addr, "instr.synthetic")[0]; end != int64(want) {
		t.Errorf("output partition holds %d messages, want %d", end, want)
	}
	msgs := readAll(t, addr, "instr.synthetic", want)
	seen := map[string]int{}
	for _, m := range msgs {
		w, seq := header(m, "dpinstruct-window"), header(m, "dpinstruct-seq")
		if string(m.Key) != w || w == "" || seq == "" {
			t.Fatalf("output message without window key or headers: key %q headers %v", m.Key, m.Headers)
		}
		seen[w+"/"+seq]++
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("output %s delivered %d times", k, n)
		}
	}
	if len(seen) != want || len(msgs) != want {
		t.Errorf("output topic holds %d messages (%d distinct), want %d", len(msgs), len(seen), want)
	}
	if !strings.Contains(second.output(), "resuming an interrupted output delivery") {
		t.Errorf("the restart did not resume the delivery:\n%s", second.output())
	}
}
