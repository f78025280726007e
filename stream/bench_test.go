package stream

// Run with, for example:
//
//	DPINSTRUCT_BENCH_RECORDS=1000000 go test -run '^$' -bench 'Ingest|RawRead' -benchtime 1x ./stream
//
// Both benchmarks read the same preloaded topic from one in-process broker,
// so their records/s are directly comparable: the gap is the cost of
// decoding and buffering.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/stream/broker"
	"github.com/segmentio/kafka-go"
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
	if d := os.Getenv("DPINSTRUCT_DATA"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "data"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
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

// newBenchSource joins a fresh group, so every iteration reads the whole
// topic, and returns once the first message has arrived, so the group join
// is not timed.
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

// BenchmarkIngest is the connector's hot path for one window: fetch, decode
// and buffer every record, then commit.
func BenchmarkIngest(b *testing.B) {
	addr, n, size := setupBench(b)
	ctx := context.Background()
	dec := Decoder{Format: FormatJSON, UserIDFromKey: true}
	spill := b.TempDir()
	b.SetBytes(size)
	b.ResetTimer()
	b.ReportAllocs()
	var timed time.Duration
	for range b.N {
		b.StopTimer()
		src, m := newBenchSource(b, ctx, addr)
		buf, err := NewBuffer(BufferOptions{SpillDir: spill})
		if err != nil {
			b.Fatal(err)
		}
		last := map[int]kafka.Message{}
		b.StartTimer()
		start := time.Now()
		for i := 0; ; i++ {
			r, err := dec.Decode(m)
			if err != nil {
				b.Fatalf("record %d: %v", i, err)
			}
			if err := buf.Append(r); err != nil {
				b.Fatal(err)
			}
			last[m.Partition] = m
			if i == n-1 {
				break
			}
			if m, err = src.Fetch(ctx); err != nil {
				b.Fatal(err)
			}
		}
		for rec, err := range buf.Batches() { // seal the last batch, as a window close would
			if err != nil || rec.NumRows() == 0 {
				b.Fatal(err)
			}
		}
		commits := make([]kafka.Message, 0, len(last))
		for _, m := range last {
			commits = append(commits, m)
		}
		if err := src.Commit(ctx, commits...); err != nil {
			b.Fatal(err)
		}
		timed += time.Since(start)
		b.StopTimer()
		if buf.Rows() != int64(n) {
			b.Fatalf("buffered %d rows, want %d", buf.Rows(), n)
		}
		buf.Close()
		src.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/timed.Seconds(), "records/s")
}

// BenchmarkRawRead is the ceiling for BenchmarkIngest: the same consumer
// group reader fetching the same records with no processing.
func BenchmarkRawRead(b *testing.B) {
	addr, n, size := setupBench(b)
	ctx := context.Background()
	b.SetBytes(size)
	b.ResetTimer()
	b.ReportAllocs()
	var timed time.Duration
	for range b.N {
		b.StopTimer()
		src, _ := newBenchSource(b, ctx, addr)
		b.StartTimer()
		start := time.Now()
		for i := 1; i < n; i++ {
			if _, err := src.Fetch(ctx); err != nil {
				b.Fatal(err)
			}
		}
		timed += time.Since(start)
		b.StopTimer()
		src.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/timed.Seconds(), "records/s")
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
