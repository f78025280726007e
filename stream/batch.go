package stream

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// fixedRowBytes approximates the per-row cost of the fixed-width parts of a
// row: three int32 string offsets, an int64 timestamp, an int32 partition and
// an int64 offset. Validity bitmaps are ignored.
const fixedRowBytes = 3*4 + 8 + 4 + 8

// maxBatchBytes keeps every string column under Arrow's int32 offset limit
// whatever bound the caller asks for.
const maxBatchBytes = 1 << 30

// reserveRows caps up-front reservation, so a huge row bound does not
// allocate memory that a byte-bounded batch will never use.
const reserveRows = 1 << 16

// BatchBuilder accumulates records into Arrow record batches of [Schema],
// bounded by a row count and an approximate byte size. It is not safe for
// concurrent use.
type BatchBuilder struct {
	maxRows  int
	maxBytes int64
	rows     int
	bytes    int64

	// String bytes of the current and previous batch, to size reservations.
	curText, curID, curUser    int64
	prevText, prevID, prevUser int64
	prevRows                   int

	rb        *array.RecordBuilder
	id        *array.StringBuilder
	userID    *array.StringBuilder
	text      *array.StringBuilder
	eventTime *array.TimestampBuilder
	partition *array.Int32Builder
	offset    *array.Int64Builder
}

// NewBatchBuilder returns a builder whose batches hold at most maxRows rows
// (<= 0 means 8192) and about maxBytes bytes (<= 0 means 8 MiB). A single
// record larger than maxBytes still makes a batch of its own. A nil mem
// means memory.DefaultAllocator.
func NewBatchBuilder(mem memory.Allocator, maxRows int, maxBytes int64) *BatchBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	if maxRows <= 0 {
		maxRows = DefaultBatchRows
	}
	if maxBytes <= 0 {
		maxBytes = DefaultBatchBytes
	}
	maxBytes = min(maxBytes, maxBatchBytes)
	rb := array.NewRecordBuilder(mem, schema)
	b := &BatchBuilder{
		maxRows:   maxRows,
		maxBytes:  maxBytes,
		rb:        rb,
		id:        rb.Field(colID).(*array.StringBuilder),
		userID:    rb.Field(colUserID).(*array.StringBuilder),
		text:      rb.Field(colText).(*array.StringBuilder),
		eventTime: rb.Field(colEventTime).(*array.TimestampBuilder),
		partition: rb.Field(colPartition).(*array.Int32Builder),
		offset:    rb.Field(colOffset).(*array.Int64Builder),
	}
	b.reserve()
	return b
}

// reserve sizes the builders for a full batch so that appends on the hot
// path do not reallocate and copy. String data is sized from the previous
// batch's averages: Arrow keeps a builder's spare capacity in the finished
// batch, so reserving for the byte bound would make small-row batches hold
// several times the memory the byte accounting reports.
func (b *BatchBuilder) reserve() {
	n := min(b.maxRows, reserveRows)
	b.rb.Reserve(n)
	avg := func(total int64, dflt int) int {
		if b.prevRows == 0 {
			return n * dflt
		}
		return int(min(total/int64(b.prevRows)*int64(n)*9/8, b.maxBytes))
	}
	b.text.ReserveData(avg(b.prevText, 64))
	b.id.ReserveData(avg(b.prevID, 16))
	b.userID.ReserveData(avg(b.prevUser, 8))
}

// Append adds r and reports whether the batch has reached a bound and
// should be taken with NewRecordBatch before more appends.
func (b *BatchBuilder) Append(r Record) (full bool) {
	b.id.Append(r.ID)
	if r.UserID == "" {
		b.userID.AppendNull()
	} else {
		b.userID.Append(r.UserID)
	}
	b.text.Append(r.Text)
	b.eventTime.Append(arrow.Timestamp(toMillis(r.EventTime)))
	b.partition.Append(r.Partition)
	b.offset.Append(r.Offset)
	b.rows++
	b.curText += int64(len(r.Text))
	b.curID += int64(len(r.ID))
	b.curUser += int64(len(r.UserID))
	b.bytes += recordBytes(r)
	return b.rows >= b.maxRows || b.bytes >= b.maxBytes
}

func recordBytes(r Record) int64 {
	return int64(len(r.ID)+len(r.UserID)+len(r.Text)) + fixedRowBytes
}

// Len is the number of rows appended since the last NewRecordBatch.
func (b *BatchBuilder) Len() int { return b.rows }

// Bytes is the approximate size of the rows appended since the last
// NewRecordBatch: string lengths plus fixed-width columns.
func (b *BatchBuilder) Bytes() int64 { return b.bytes }

// NewRecordBatch returns the rows appended so far as a batch and resets the
// builder. The caller owns the batch and must Release it.
func (b *BatchBuilder) NewRecordBatch() arrow.RecordBatch {
	rec := b.rb.NewRecordBatch()
	if b.rows > 0 {
		b.prevRows, b.prevText, b.prevID, b.prevUser = b.rows, b.curText, b.curID, b.curUser
	}
	b.rows, b.bytes, b.curText, b.curID, b.curUser = 0, 0, 0, 0, 0
	b.reserve()
	return rec
}

// Release frees the builder's memory. The builder must not be used after.
func (b *BatchBuilder) Release() { b.rb.Release() }
