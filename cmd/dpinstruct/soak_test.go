package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dpinstruct/dpinstruct/internal/racebuild"
)

// soakRecords is the soak test's stream length.
const soakRecords = 1_000_000

// rssKB reads a process's resident set size.
func rssKB(pid int) (int64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

var lagMetric = regexp.MustCompile(`(?m)^dpinstruct_consumer_lag (\S+)$`)

// TestSoakMillionRecords streams 1,000,000 records through the real binary
// (embedded broker, real ClickHouse, windows of 100,000, the count
// processor) and samples the connector's RSS and consumer lag: memory must
// stay flat from the first windows to the last, and the lag must fall to
// zero. The figures go to docs/BENCHMARKS.md.
func TestSoakMillionRecords(t *testing.T) {
	dsn := needClickHouse(t)
	if racebuild.Enabled {
		t.Skip("a million records under -race takes too long; make test runs it without -race")
	}
	db, dbName, conn := freshDatabase(t, dsn)
	addr := startBroker(t, 2)
	const batch = 50_000
	for start := 0; start < soakRecords; start += batch {
		msgs := make([]kafka.Message, batch)
		for i := range msgs {
			n := start + i
			msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("user-%d", n%997)),
				Value: []byte(fmt.Sprintf(`{"id":"r%d","text":"how do I make my soak test number %d shorter and still useful?"}`, n, n))}
		}
		writeMessages(t, addr, "instr", msgs...)
	}
	// Keys split the records unevenly over the two partitions: each ends in
	// a partial window, which max_duration closes (8 full + 2 partial).
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a",
		maxRecords: 100_000, maxDuration: 5 * time.Second})
	windows := 0
	for _, n := range partitionEnds(t, addr, "instr") {
		windows += int((n + 99_999) / 100_000)
	}
	start := time.Now()
	run := startProc(t, []string{"DPINSTRUCT_WINDOW_LEASE=2m"}, "run", "--config", cfg, "--max-windows", strconv.Itoa(windows))
	run.waitFor(`"addr":"`, time.Minute)
	m := regexp.MustCompile(`"addr":"([^"]+)"`).FindStringSubmatch(run.output())
	pid := run.cmd.Process.Pid

	type sample struct {
		at      time.Duration
		rss     int64
		windows int
	}
	var samples []sample
	var lags []float64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			rss, ok := rssKB(pid)
			if !ok {
				return
			}
			samples = append(samples, sample{time.Since(start), rss, strings.Count(run.output(), "window written and committed")})
			if body, err := httpGetErr("http://" + m[1] + "/metrics"); err == nil {
				if l := lagMetric.FindStringSubmatch(body); l != nil {
					v, _ := strconv.ParseFloat(l[1], 64)
					lags = append(lags, v)
				}
			}
		}
	}()
	if code := run.wait(10 * time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, run.output())
	}
	elapsed := time.Since(start)
	<-done
	checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))

	var early, late int64
	for _, s := range samples {
		if s.windows < windows/2 {
			early = max(early, s.rss)
		} else {
			late = max(late, s.rss)
		}
	}
	maxLag := 0.0
	for _, l := range lags {
		maxLag = max(maxLag, l)
	}
	t.Logf("soak: %d records in %d windows in %s (%.0f records/s end to end); peak RSS %d MB in the first half of the windows, %d MB in the second; lag peaked at %.0f, last sample %v",
		soakRecords, windows, elapsed.Round(time.Second), soakRecords/elapsed.Seconds(), early/1024, late/1024, maxLag, lags[len(lags)-1:])
	if early == 0 || late == 0 {
		t.Fatalf("too few memory samples: %d", len(samples))
	}
	if late > early*13/10+50*1024 {
		t.Errorf("memory grew: peak RSS %d MB in the first half, %d MB in the second", early/1024, late/1024)
	}
	if len(lags) == 0 || lags[len(lags)-1] > maxLag/10 {
		t.Errorf("lag did not recover: peak %.0f, last %v", maxLag, lags)
	}
}

func httpGetErr(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
