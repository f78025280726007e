package stream

// Run with, for example (deploy/local/bench.sh does):
//
//	DPINSTRUCT_BENCH_RECORDS=1000000 go test -run '^$' -bench Ingest -benchtime 6x ./stream
//
// BenchmarkIngest reads one preloaded topic from an in-process broker with
// the raw kafka-go reader and with the ingest path, in the same run, so the
// ratio of their records/s is the cost of decoding and buffering.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/internal/memprobe"
	"github.com/dpinstruct/dpinstruct/stream/broker"
	"github.com/segmentio/kafka-go"

	"github.com/dpinstruct/dpinstruct/internal/shared"
)

const benchTopic = "bench-instructions"

var bench struct {
	once  sync.Once
	addr  string
	n     int
	bytes int64
	err   error
	skip  string
}

// benchData returns the directory of shared data sets: $DPINSTRUCT_DATA, or
// ../shared/data next to the repository root.
func benchData() (string, error) {
	if d := shared.Path("DPINSTRUCT_DATA", "data"); d != "" {
		return d, nil
	}
	return "", errors.New("no go.mod above the working directory")
}

// setupBench starts a broker and loads it once per test binary with N
// records, cycling through the dolly prompts. The broker stays up until the
// process exits.
func setupBench(b *testing.B) (addr string, n int, size int64) {
	b.Helper()
	bench.once.Do(func() {
		bench.n = 200_000
		if s := os.Getenv("DPINSTRUCT_BENCH_RECORDS"); s != "" {
			if bench.n, bench.err = strconv.Atoi(s); bench.err != nil || bench.n <= 0 {
				bench.err = fmt.Errorf("DPINSTRUCT_BENCH_RECORDS=%q is not a positive integer", s)
				return
			}
		}
		dataDir, err := benchData()
		if err != nil {
			bench.err = err
			return
		}
		path := filepath.Join(dataDir, "dolly", "prompts.jsonl")
		raw, err := os.ReadFile(path)
		if err != nil {
			bench.skip = fmt.Sprintf("benchmark data not available (%v); set DPINSTRUCT_DATA to the shared data directory", err)
			return
		}
		var lines [][]byte
		for _, l := range bytes.Split(raw, []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 {
			bench.skip = path + " has no lines"
			return
		}
		brk, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Partitions: 3, Topics: []string{benchTopic}})
		if err != nil {
			bench.err = err
			return
		}
		bench.addr = brk.Addr()
		pr, pw := io.Pipe()
		go func() {
			w := bufio.NewWriterSize(pw, 1<<20)
			for i := range bench.n {
				l := lines[i%len(lines)]
				bench.bytes += int64(len(l))
				w.Write(l)
				w.WriteByte('\n')
			}
			pw.CloseWithError(w.Flush())
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		got, err := ProduceJSONL(ctx, pr, ProduceOptions{Brokers: []string{bench.addr}, Topic: benchTopic, BatchSize: 1000})
		if err == nil && got != int64(bench.n) {
			err = fmt.Errorf("preloaded %d of %d records", got, bench.n)
		}
		bench.err = err
	})
	if bench.skip != "" {
		b.Skip(bench.skip)
	}
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.addr, bench.n, bench.bytes
}

var benchGroup int

// newBenchSource joins a fresh group, so that every phase reads the whole
// topic from the start, and returns once the first message has arrived, so
// the group join is not timed.
func newBenchSource(b *testing.B, ctx context.Context, addr string) (*Source, kafka.Message) {
	b.Helper()
	benchGroup++
	src, err := NewSource(SourceConfig{Brokers: []string{addr}, Topic: benchTopic, GroupID: "bench-" + strconv.Itoa(benchGroup)})
	if err != nil {
		b.Fatal(err)
	}
	first, err := src.Fetch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return src, first
}

// phaseStats is what one timed phase of a benchmark measured.
type phaseStats struct {
	records  int64
	elapsed  time.Duration
	allocs   uint64 // heap objects allocated during the phase
	peakHeap uint64 // most heap in use (live and not yet collected) seen during the phase
	peakLive uint64 // most heap found live by a collection during the phase
}

func (p *phaseStats) add(q phaseStats) {
	p.records += q.records
	p.elapsed += q.elapsed
	p.allocs += q.allocs
	p.peakHeap = max(p.peakHeap, q.peakHeap)
	p.peakLive = max(p.peakLive, q.peakLive)
}

func (p phaseStats) rate() float64 { return float64(p.records) / p.elapsed.Seconds() }

// runPhase times fn, which processes records, with the benchmark timer
// running and heap sampling on. It starts from a collected heap so that one
// phase's garbage is not charged to the next.
func runPhase(b *testing.B, fn func() int64) phaseStats {
	b.StopTimer()
	mem := memprobe.Start()
	b.StartTimer()
	start := time.Now()
	n := fn()
	elapsed := time.Since(start)
	b.StopTimer()
	peak := mem.Stop()
	return phaseStats{records: n, elapsed: elapsed, allocs: peak.Allocs, peakHeap: peak.HeapInUse, peakLive: peak.Live}
}

// rawRead is the ceiling for ingest: the same kafka-go consumer group
// reader fetching the same records, doing nothing with them.
func rawRead(b *testing.B, ctx context.Context, addr string, n int) phaseStats {
	src, _ := newBenchSource(b, ctx, addr)
	defer src.Close()
	return runPhase(b, func() int64 {
		for i := 1; i < n; i++ {
			if _, err := src.Fetch(ctx); err != nil {
				b.Fatal(err)
			}
		}
		return int64(n - 1)
	})
}

// ingest is the connector's hot path for one window holding the whole topic:
// fetch, decode and buffer every record into Arrow batches, seal the last
// batch as a window close does, then commit.
func ingest(b *testing.B, ctx context.Context, addr string, n int) phaseStats {
	dec := Decoder{Format: FormatJSON, UserIDFromKey: true}
	src, m := newBenchSource(b, ctx, addr)
	defer src.Close()
	buf, err := NewBuffer(BufferOptions{SpillDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	// The first message was fetched while joining the group, outside the
	// timed phase; decode it there too, so both phases time n-1 fetches.
	var last []kafka.Message // per partition, the last message to commit
	keep := func(m kafka.Message) {
		for len(last) <= m.Partition {
			last = append(last, kafka.Message{Partition: -1})
		}
		last[m.Partition] = m
	}
	r, err := dec.Decode(m)
	if err != nil || buf.Append(r) != nil {
		b.Fatal("first record:", err)
	}
	keep(m)
	st := runPhase(b, func() int64 {
		for i := 1; i < n; i++ {
			if m, err = src.Fetch(ctx); err != nil {
				b.Fatal(err)
			}
			r, err := dec.Decode(m)
			if err != nil {
				b.Fatalf("record %d: %v", i, err)
			}
			if err := buf.Append(r); err != nil {
				b.Fatal(err)
			}
			keep(m)
		}
		for rec, err := range buf.Batches() {
			if err != nil || rec.NumRows() == 0 {
				b.Fatal(err)
			}
		}
		commits := make([]kafka.Message, 0, len(last))
		for _, m := range last {
			if m.Partition >= 0 {
				commits = append(commits, m)
			}
		}
		if err := src.Commit(ctx, commits...); err != nil {
			b.Fatal(err)
		}
		return int64(n - 1)
	})
	if buf.Rows() != int64(n) {
		b.Fatalf("buffered %d rows, want %d", buf.Rows(), n)
	}
	return st
}

// BenchmarkIngest measures records/s from Kafka into Arrow batches next to
// the raw kafka-go reader's own rate, in the same run, on the same preloaded
// topic. Each iteration reads the whole topic twice, once per phase, each
// time in a fresh consumer group; the phases alternate which goes first, so
// warm-up favours neither. Use -benchtime Nx with N >= 2.
//
// Metrics: raw-records/s and records/s (ingest), x-raw (their ratio); per
// phase, the peak heap in use (live plus garbage not yet collected, which is
// what the process has to hold) and the peak live heap (what a collection
// found reachable), in MB, and heap allocations per record; and the
// process's peak RSS. The heap figures include the broker, which runs in this process and
// holds the whole topic: baseline-heap-MB is the heap at the start of a
// phase, after a collection. ns/op is suppressed: an iteration is two
// phases plus two group joins, which says nothing on its own.
func BenchmarkIngest(b *testing.B) {
	addr, n, _ := setupBench(b)
	ctx := context.Background()
	var raw, ing phaseStats
	runtime.GC()
	baseline := memprobe.HeapInUse()
	for i := range b.N {
		if i%2 == 0 {
			raw.add(rawRead(b, ctx, addr, n))
			ing.add(ingest(b, ctx, addr, n))
		} else {
			ing.add(ingest(b, ctx, addr, n))
			raw.add(rawRead(b, ctx, addr, n))
		}
	}
	const mb = 1 << 20
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(raw.rate(), "raw-records/s")
	b.ReportMetric(ing.rate(), "records/s")
	b.ReportMetric(ing.rate()/raw.rate(), "x-raw")
	b.ReportMetric(float64(baseline)/mb, "baseline-heap-MB")
	b.ReportMetric(float64(raw.peakHeap)/mb, "raw-peak-heap-MB")
	b.ReportMetric(float64(ing.peakHeap)/mb, "peak-heap-MB")
	b.ReportMetric(float64(raw.peakLive)/mb, "raw-peak-live-MB")
	b.ReportMetric(float64(ing.peakLive)/mb, "peak-live-MB")
	b.ReportMetric(float64(raw.allocs)/float64(raw.records), "raw-allocs/record")
	b.ReportMetric(float64(ing.allocs)/float64(ing.records), "allocs/record")
	b.ReportMetric(float64(peakRSS())/mb, "process-peak-RSS-MB")
}

// peakRSS returns the process's peak resident set size (VmHWM), or 0 where
// /proc is not available.
func peakRSS() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkBatchAppend measures BatchBuilder.Append alone, without Kafka.
func BenchmarkBatchAppend(b *testing.B) {
	bb := NewBatchBuilder(nil, DefaultBatchRows, DefaultBatchBytes)
	defer bb.Release()
	r := Record{ID: "instructions/0/123456", UserID: "user-42", Text: "Given a reference text about Lollapalooza, where does it take place?", EventTime: time.Now(), Offset: 123456}
	b.ReportAllocs()
	for b.Loop() {
		if bb.Append(r) {
			bb.NewRecordBatch().Release()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDecodeJSON measures Decoder.Decode alone on a typical message.
func BenchmarkDecodeJSON(b *testing.B) {
	m := kafka.Message{Topic: "t", Partition: 1, Offset: 9, Key: []byte("user-42"),
		Value: []byte(`{"id": "dolly_5", "text": "If I have more pieces at the time of stalemate, have I won?"}`)}
	d := Decoder{UserIDFromKey: true}
	b.SetBytes(int64(len(m.Value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
