package sink

// Run with (deploy/local/bench.sh does):
//
//	DPINSTRUCT_CLICKHOUSE_DSN=clickhouse://default@127.0.0.1:19000/default \
//	  go test -run '^$' -bench WriteWindow -benchtime 6x ./sink/

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/internal/memprobe"
)

// benchRows is the row count of one benchmark window:
// DPINSTRUCT_BENCH_WINDOW_ROWS, default 100,000.
var benchRows = func() int64 {
	if n, err := strconv.ParseInt(os.Getenv("DPINSTRUCT_BENCH_WINDOW_ROWS"), 10, 64); err == nil && n > 0 {
		return n
	}
	return 100_000
}()

// benchRowsData returns benchRows rows whose texts cycle through the Dolly
// prompts (realistic length and character mix for synthetic instructions),
// or skips when the shared data set is not there.
func benchRowsData(b *testing.B) []Row {
	b.Helper()
	dir := os.Getenv("DPINSTRUCT_DATA")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			b.Fatal(err)
		}
		dir = filepath.Join(wd, "..", "..", "shared", "data") // <repo>/sink -> <repo>/../shared/data
	}
	path := filepath.Join(dir, "dolly", "prompts.jsonl")
	f, err := os.Open(path)
	if err != nil {
		b.Skipf("benchmark data not available (%v); set DPINSTRUCT_DATA to the shared data directory", err)
	}
	defer f.Close()
	var texts []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct{ Text string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Text != "" {
			texts = append(texts, line.Text)
		}
	}
	if err := sc.Err(); err != nil || len(texts) == 0 {
		b.Fatalf("read %s: %d texts, %v", path, len(texts), err)
	}
	rows := make([]Row, benchRows)
	for i := range rows {
		rows[i] = Row{Seq: uint32(i), Text: texts[i%len(texts)],
			Cluster: int32(i % 16), GeneratorVersion: "gen-1", Epsilon: 1.5, Delta: 1e-6}
	}
	return rows
}

type insertPhase struct {
	rows     int64
	elapsed  time.Duration
	peakHeap uint64
}

// timeInsert runs fn with the benchmark timer on, from a collected heap,
// and records the peak heap in use, sampled every 5ms.
func timeInsert(b *testing.B, p *insertPhase, fn func()) {
	b.StopTimer()
	mem := memprobe.Start()
	b.StartTimer()
	start := time.Now()
	fn()
	p.elapsed += time.Since(start)
	b.StopTimer()
	p.peakHeap = max(p.peakHeap, mem.Stop().HeapInUse)
	p.rows += benchRows
}

// BenchmarkWriteWindow compares WriteWindow (the rows of one window in one
// batch, then the window's ledger row marked written) with a raw
// clickhouse-go PrepareBatch/Append/Send of the same prepared rows into the
// same table, in the same run. Each iteration runs both; they alternate
// which goes first, so warm-up favours neither. Use -benchtime Nx, N >= 2.
//
// Metrics: raw-rows/s, rows/s (WriteWindow), x-raw (their ratio), the peak
// heap in use per phase, and mark-written-ms, the time WriteWindow spends on
// the ledger row alone (measured by a window with no rows). ns/op is
// suppressed: an iteration is all three.
func BenchmarkWriteWindow(b *testing.B) {
	c := newTestDB(b, true)
	rows := benchRowsData(b)
	closed := time.Now()
	ctx := testCtx(b)
	query := "INSERT INTO " + c.table("synthetic_instructions") +
		" (id, window_id, attempt, group_id, seq, text, cluster, generator_version, epsilon, delta, created_at)"

	var sink, raw insertPhase
	writeWindow := func(i int) {
		w := testWindow(fmt.Sprintf("bench-sink-%d", i), Range{"in", 0, int64(i) * benchRows, int64(i+1)*benchRows - 1})
		w.ClosedAt = closed
		timeInsert(b, &sink, func() {
			if err := c.WriteWindow(ctx, w, rows); err != nil {
				b.Fatal(err)
			}
		})
	}
	rawInsert := func(i int) {
		wid := fmt.Sprintf("bench-raw-%d", i)
		timeInsert(b, &raw, func() {
			batch, err := c.Conn().PrepareBatch(ctx, query)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rows {
				if err := batch.Append(RowID(wid, r.Seq), wid, "a1", "g1", r.Seq, r.Text, r.Cluster,
					r.GeneratorVersion, r.Epsilon, r.Delta, closed); err != nil {
					b.Fatal(err)
				}
			}
			if err := batch.Send(); err != nil {
				b.Fatal(err)
			}
		})
	}
	// The part of WriteWindow that the raw client does not do: the window's
	// ledger row marked written, a second INSERT, timed alone.
	var mark time.Duration
	markWritten := func(i int) {
		w := testWindow(fmt.Sprintf("bench-mark-%d", i), Range{"mark", 0, int64(i), int64(i)})
		w.ClosedAt = closed
		b.StartTimer()
		start := time.Now()
		if err := c.WriteWindow(ctx, w, nil); err != nil {
			b.Fatal(err)
		}
		mark += time.Since(start)
		b.StopTimer()
	}
	for i := range b.N {
		markWritten(i)
		if i%2 == 0 {
			rawInsert(i)
			writeWindow(i)
		} else {
			writeWindow(i)
			rawInsert(i)
		}
	}
	rate := func(p insertPhase) float64 { return float64(p.rows) / p.elapsed.Seconds() }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rate(raw), "raw-rows/s")
	b.ReportMetric(rate(sink), "rows/s")
	b.ReportMetric(rate(sink)/rate(raw), "x-raw")
	b.ReportMetric(float64(mark.Milliseconds())/float64(b.N), "mark-written-ms")
	b.ReportMetric(float64(raw.peakHeap)/(1<<20), "raw-peak-heap-MB")
	b.ReportMetric(float64(sink.peakHeap)/(1<<20), "peak-heap-MB")
}
