package stream

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

func testRecord(i int) Record {
	r := Record{
		ID:        fmt.Sprintf("id-%d", i),
		Text:      fmt.Sprintf("instruction number %d %s", i, strings.Repeat("x", i%50)),
		EventTime: time.UnixMilli(1700000000000 + int64(i)).UTC(),
		Partition: int32(i % 3),
		Offset:    int64(i),
	}
	if i%4 != 0 { // some null user ids
		r.UserID = fmt.Sprintf("user-%d", i%7)
	}
	if i%10 == 0 { // and some unknown event times
		r.EventTime = time.Time{}
	}
	return r
}

func TestBatchBuilderBounds(t *testing.T) {
	tests := []struct {
		name     string
		maxRows  int
		maxBytes int64
		wantFull int // rows at which Append first reports full
	}{
		{"rows", 10, 1 << 20, 10},
		{"bytes", 1000, 3 * (fixedRowBytes + 10), 3},
		{"one big row", 1000, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			b := NewBatchBuilder(mem, tt.maxRows, tt.maxBytes)
			defer b.Release()
			r := Record{ID: "12345", Text: "abcde", Partition: 1, Offset: 1} // 10 string bytes
			for i := 1; ; i++ {
				if b.Append(r) {
					if i != tt.wantFull {
						t.Fatalf("full after %d rows, want %d", i, tt.wantFull)
					}
					break
				}
				if i > tt.wantFull {
					t.Fatalf("not full after %d rows", i)
				}
			}
			if got, want := b.Bytes(), int64(tt.wantFull)*(fixedRowBytes+10); got != want {
				t.Errorf("Bytes = %d, want %d", got, want)
			}
			rec := b.NewRecordBatch()
			defer rec.Release()
			if rec.NumRows() != int64(tt.wantFull) || b.Len() != 0 || b.Bytes() != 0 {
				t.Errorf("batch rows %d, builder left with %d rows %d bytes", rec.NumRows(), b.Len(), b.Bytes())
			}
		})
	}
}

func TestBatchRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewBatchBuilder(mem, 100, 1<<20)
	defer b.Release()
	// Two batches, so the second one uses the adaptive reservation.
	for round := range 2 {
		var want []Record
		for i := range 50 {
			r := testRecord(round*50 + i)
			want = append(want, r)
			b.Append(r)
		}
		rec := b.NewRecordBatch()
		if !rec.Schema().Equal(Schema()) {
			t.Fatalf("schema = %s", rec.Schema())
		}
		got, err := RecordsOf(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
		assertRecords(t, got, want)
	}
}

func assertRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.EventTime.Equal(w.EventTime) || g.EventTime.IsZero() != w.EventTime.IsZero() {
			t.Fatalf("record %d EventTime = %v, want %v", i, g.EventTime, w.EventTime)
		}
		g.EventTime, w.EventTime = time.Time{}, time.Time{}
		if g != w {
			t.Fatalf("record %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestBufferInMemory(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := filepath.Join(t.TempDir(), "spill")
	buf, err := NewBuffer(BufferOptions{Allocator: mem, BatchRows: 64, SpillDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var want []Record
	for i := range 1000 {
		r := testRecord(i)
		want = append(want, r)
		if err := buf.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Spilled() {
		t.Error("spilled under the default memory bound")
	}
	assertRecords(t, collect(t, buf), want)
	if err := buf.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("spill dir not empty: %v", entries)
	}
}

func TestBufferSpill(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := filepath.Join(t.TempDir(), "spill", "nested")
	buf, err := NewBuffer(BufferOptions{Allocator: mem, BatchRows: 100, BatchBytes: 1 << 20, MemoryBytes: 8 << 10, SpillDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()

	var want []Record
	var wantBytes int64
	add := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			r := testRecord(i)
			want = append(want, r)
			wantBytes += recordBytes(r)
			if err := buf.Append(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(0, 2500)
	if !buf.Spilled() {
		t.Fatal("buffer did not spill past its memory bound")
	}
	if buf.Rows() != 2500 || buf.Bytes() != wantBytes {
		t.Errorf("Rows, Bytes = %d, %d; want 2500, %d", buf.Rows(), buf.Bytes(), wantBytes)
	}

	assertPerm(t, dir, 0o700)
	var files []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dir {
			return nil
		}
		if d.IsDir() {
			assertPerm(t, path, 0o700)
		} else {
			assertPerm(t, path, 0o600)
			files = append(files, path)
		}
		return nil
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("no spill files found (err %v)", err)
	}

	// Rows come back in order, also when read twice and appended between.
	assertRecords(t, collect(t, buf), want)
	add(2500, 2750)
	assertRecords(t, collect(t, buf), want)

	// Stopping early must not leak the batch being read.
	for range buf.Batches() {
		break
	}

	if err := buf.Close(); err != nil {
		t.Fatal(err)
	}
	if err := buf.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, f := range files {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("spill file %s survived Close: %v", f, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("spill dir not empty after Close: %v", entries)
	}
	if err := buf.Append(testRecord(0)); !errors.Is(err, ErrBufferClosed) {
		t.Errorf("Append after Close = %v", err)
	}
	for _, err := range buf.Batches() {
		if !errors.Is(err, ErrBufferClosed) {
			t.Errorf("Batches after Close = %v", err)
		}
	}
}

func TestBufferZeroOptions(t *testing.T) {
	buf, err := NewBuffer(BufferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	if err := buf.Append(testRecord(1)); err != nil {
		t.Fatal(err)
	}
	assertRecords(t, collect(t, buf), []Record{testRecord(1)})
}

func assertPerm(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s mode = %o, want %o", path, got, want)
	}
}

func collect(t *testing.T, buf *Buffer) []Record {
	t.Helper()
	var out []Record
	for rec, err := range buf.Batches() {
		if err != nil {
			t.Fatal(err)
		}
		rs, err := RecordsOf(rec)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rs...)
	}
	return out
}
