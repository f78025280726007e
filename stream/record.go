package stream

import (
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Record is one decoded message.
type Record struct {
	ID        string
	UserID    string // empty means unknown and is stored as null
	Text      string
	EventTime time.Time // zero means unknown
	Partition int32
	Offset    int64
}

// Column indexes in [Schema]; kept in one place so the builder and the
// reader cannot disagree.
const (
	colID = iota
	colUserID
	colText
	colEventTime
	colPartition
	colOffset
	numCols
)

var eventTimeType = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}

var schema = arrow.NewSchema([]arrow.Field{
	colID:        {Name: "id", Type: arrow.BinaryTypes.String},
	colUserID:    {Name: "user_id", Type: arrow.BinaryTypes.String, Nullable: true},
	colText:      {Name: "text", Type: arrow.BinaryTypes.String},
	colEventTime: {Name: "event_time", Type: eventTimeType},
	colPartition: {Name: "partition", Type: arrow.PrimitiveTypes.Int32},
	colOffset:    {Name: "offset", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// Schema returns the Arrow schema of every batch this package builds. The
// returned schema is shared and must not be modified.
func Schema() *arrow.Schema { return schema }

// RecordsOf converts a batch of [Schema] back into records. It exists for
// tests and small tools; hot paths should read the columns directly.
func RecordsOf(rec arrow.RecordBatch) ([]Record, error) {
	if !rec.Schema().Equal(schema) {
		return nil, fmt.Errorf("stream: batch schema %s does not match stream.Schema()", rec.Schema())
	}
	ids, ok1 := rec.Column(colID).(*array.String)
	users, ok2 := rec.Column(colUserID).(*array.String)
	texts, ok3 := rec.Column(colText).(*array.String)
	times, ok4 := rec.Column(colEventTime).(*array.Timestamp)
	parts, ok5 := rec.Column(colPartition).(*array.Int32)
	offs, ok6 := rec.Column(colOffset).(*array.Int64)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return nil, fmt.Errorf("stream: batch columns have unexpected array types")
	}
	// Arrow string values alias the batch's buffers; clone so the records
	// outlive the batch.
	out := make([]Record, rec.NumRows())
	for i := range out {
		r := Record{
			ID:        strings.Clone(ids.Value(i)),
			Text:      strings.Clone(texts.Value(i)),
			EventTime: fromMillis(int64(times.Value(i))),
			Partition: parts.Value(i),
			Offset:    offs.Value(i),
		}
		if users.IsValid(i) {
			r.UserID = strings.Clone(users.Value(i))
		}
		out[i] = r
	}
	return out, nil
}

// zeroMillis is time.Time{} in unix milliseconds, so that an unknown event
// time survives a round trip through Arrow as the zero time.
var zeroMillis = time.Time{}.UnixMilli()

func toMillis(t time.Time) int64 {
	if t.IsZero() {
		return zeroMillis
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == zeroMillis {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// TextsOf returns a copy of the text column of a batch of [Schema]: the
// one column a processor that learns from content needs.
func TextsOf(rec arrow.RecordBatch) ([]string, error) {
	if !rec.Schema().Equal(schema) {
		return nil, fmt.Errorf("stream: batch schema %s does not match stream.Schema()", rec.Schema())
	}
	col, ok := rec.Column(colText).(*array.String)
	if !ok {
		return nil, fmt.Errorf("stream: text column has an unexpected array type")
	}
	out := make([]string, col.Len())
	for i := range out {
		out[i] = strings.Clone(col.Value(i))
	}
	return out, nil
}

// UsersOf returns a copy of the user_id column of a batch of [Schema]
// ("" where a record has none), aligned with TextsOf.
func UsersOf(rec arrow.RecordBatch) ([]string, error) {
	if !rec.Schema().Equal(schema) {
		return nil, fmt.Errorf("stream: batch schema %s does not match stream.Schema()", rec.Schema())
	}
	col, ok := rec.Column(colUserID).(*array.String)
	if !ok {
		return nil, fmt.Errorf("stream: user_id column has an unexpected array type")
	}
	out := make([]string, col.Len())
	for i := range out {
		if col.IsValid(i) {
			out[i] = strings.Clone(col.Value(i))
		}
	}
	return out, nil
}
