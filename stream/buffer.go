package stream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Defaults for zero fields of [BufferOptions].
const (
	DefaultBatchRows   = 8192
	DefaultBatchBytes  = 8 << 20
	DefaultMemoryBytes = 256 << 20
)

// DefaultSpillDir is where buffers spill when BufferOptions.SpillDir is
// empty.
func DefaultSpillDir() string { return filepath.Join(os.TempDir(), "dpinstruct-spill") }

// ErrBufferClosed is returned by a [Buffer] used after Close.
var ErrBufferClosed = errors.New("stream: buffer is closed")

// BufferOptions configures a [Buffer]. The zero value is usable.
type BufferOptions struct {
	Allocator   memory.Allocator // nil means memory.DefaultAllocator
	BatchRows   int              // rows per batch; 0 means DefaultBatchRows
	BatchBytes  int64            // approximate bytes per batch; 0 means DefaultBatchBytes
	MemoryBytes int64            // approximate bytes kept in memory before spilling; 0 means DefaultMemoryBytes

	// SpillDir holds spill files. It is created with mode 0700 if missing;
	// each buffer spills into its own 0700 subdirectory, to a 0600 file, since
	// spilled batches hold private text. Empty means DefaultSpillDir().
	SpillDir string
}

// Buffer stores the records of one window as Arrow record batches, in
// append order. Batches stay in memory up to MemoryBytes; after that every
// further batch goes to an Arrow IPC stream file, so the order of batches
// is always: in memory, then on disk.
//
// A Buffer is not safe for concurrent use. Close it to free memory and
// delete spill files.
type Buffer struct {
	opts    BufferOptions
	builder *BatchBuilder

	mem      []arrow.RecordBatch
	memBytes int64
	rows     int64
	bytes    int64

	spill *spillFile
	err   error // sticky: after a failed spill the buffer's contents are incomplete
}

type spillFile struct {
	dir string // per-buffer directory, removed whole on Close
	f   *os.File
	bw  *bufio.Writer
	w   *ipc.Writer
}

// NewBuffer returns an empty buffer. It creates SpillDir if missing, so a
// misconfigured directory shows up here rather than mid-window.
func NewBuffer(opts BufferOptions) (*Buffer, error) {
	if opts.Allocator == nil {
		opts.Allocator = memory.DefaultAllocator
	}
	if opts.BatchRows <= 0 {
		opts.BatchRows = DefaultBatchRows
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = DefaultBatchBytes
	}
	if opts.MemoryBytes <= 0 {
		opts.MemoryBytes = DefaultMemoryBytes
	}
	if opts.SpillDir == "" {
		opts.SpillDir = DefaultSpillDir()
	}
	if err := os.MkdirAll(opts.SpillDir, 0o700); err != nil {
		return nil, fmt.Errorf("stream: create spill directory: %w", err)
	}
	return &Buffer{
		opts:    opts,
		builder: NewBatchBuilder(opts.Allocator, opts.BatchRows, opts.BatchBytes),
	}, nil
}

// Append adds a record to the buffer.
func (b *Buffer) Append(r Record) error {
	if b.builder == nil {
		return ErrBufferClosed
	}
	if b.err != nil {
		return b.err
	}
	b.rows++
	b.bytes += recordBytes(r)
	if b.builder.Append(r) {
		return b.flush()
	}
	return nil
}

// Rows is the number of records appended.
func (b *Buffer) Rows() int64 { return b.rows }

// Bytes is the approximate size of the records appended (string lengths plus
// fixed-width columns), in memory and on disk together.
func (b *Buffer) Bytes() int64 { return b.bytes }

// Spilled reports whether any batch has been written to disk.
func (b *Buffer) Spilled() bool { return b.spill != nil }

// flush turns the pending rows into a batch and stores it.
func (b *Buffer) flush() error {
	if b.builder.Len() == 0 {
		return nil
	}
	size := b.builder.Bytes()
	rec := b.builder.NewRecordBatch()
	// Once one batch has spilled, later ones must too, to keep append order
	// as "memory first, then disk".
	if b.spill == nil && b.memBytes+size <= b.opts.MemoryBytes {
		b.mem = append(b.mem, rec)
		b.memBytes += size
		return nil
	}
	defer rec.Release()
	if err := b.spillBatch(rec); err != nil {
		b.err = fmt.Errorf("stream: spill batch: %w", err)
		return b.err
	}
	return nil
}

func (b *Buffer) spillBatch(rec arrow.RecordBatch) error {
	if b.spill == nil {
		dir, err := os.MkdirTemp(b.opts.SpillDir, "buffer-")
		if err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(dir, "batches.arrows"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			_ = os.RemoveAll(dir)
			return err
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		b.spill = &spillFile{
			dir: dir,
			f:   f,
			bw:  bw,
			w:   ipc.NewWriter(bw, ipc.WithSchema(schema), ipc.WithAllocator(b.opts.Allocator)),
		}
	}
	return b.spill.w.Write(rec)
}

// Batches flushes pending rows into a batch, then yields every batch in
// append order, first those in memory, then those read back from disk.
//
// A yielded batch belongs to the buffer and is valid only until the yield
// returns: the buffer releases spilled batches right after their yield and
// in-memory ones on Close. A caller that keeps a batch longer must Retain it
// and later Release it. Batches may be called again, and Append used between
// calls. Any error ends the sequence.
func (b *Buffer) Batches() iter.Seq2[arrow.RecordBatch, error] {
	return func(yield func(arrow.RecordBatch, error) bool) {
		if b.builder == nil {
			yield(nil, ErrBufferClosed)
			return
		}
		if b.err != nil {
			yield(nil, b.err)
			return
		}
		if err := b.flush(); err != nil {
			yield(nil, err)
			return
		}
		for _, rec := range b.mem {
			if !yield(rec, nil) {
				return
			}
		}
		if b.spill != nil {
			if err := b.readSpill(yield); err != nil {
				yield(nil, fmt.Errorf("stream: read spilled batches: %w", err))
			}
		}
	}
}

func (b *Buffer) readSpill(yield func(arrow.RecordBatch, error) bool) error {
	if err := b.spill.bw.Flush(); err != nil {
		return err
	}
	st, err := b.spill.f.Stat()
	if err != nil {
		return err
	}
	// The writer has not written an end-of-stream marker (more batches may
	// follow), so read exactly the bytes written so far; the reader treats EOF
	// at a message boundary as the end.
	rdr, err := ipc.NewReader(io.NewSectionReader(b.spill.f, 0, st.Size()),
		ipc.WithSchema(schema), ipc.WithAllocator(b.opts.Allocator))
	if err != nil {
		return err
	}
	defer rdr.Release()
	for rdr.Next() {
		if !yield(rdr.RecordBatch(), nil) {
			return nil
		}
	}
	return rdr.Err()
}

// Close releases memory and deletes spill files. It is idempotent.
func (b *Buffer) Close() error {
	if b.builder == nil {
		return nil
	}
	b.builder.Release()
	b.builder = nil
	for _, rec := range b.mem {
		rec.Release()
	}
	b.mem, b.memBytes = nil, 0
	if b.spill == nil {
		return nil
	}
	s := b.spill
	b.spill = nil
	// Closing the writer releases what it holds; the end-of-stream marker it
	// writes goes to a file we delete anyway.
	var errs []error
	if err := s.w.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := s.f.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stream: close buffer: %w", err)
	}
	return nil
}
