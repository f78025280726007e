package connector

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/dpinstruct/dpinstruct/sink"
	"github.com/dpinstruct/dpinstruct/stream"
)

// Window is one tumbling window of records from a single partition, as
// handed to a Processor. Its records are private: a Processor may read
// them, but whatever it returns is written to ClickHouse as is.
type Window struct {
	ID        string
	Group     string
	Topic     string
	Partition int32
	// First and Last are the inclusive offset range the window covers,
	// dead-lettered offsets included.
	First, Last int64
	// Records counts the decoded records (the rows Batches yields);
	// DeadLetters the offsets in the range that went to the dead-letter
	// topic instead.
	Records, DeadLetters int64
	Bytes                int64
	OpenedAt, ClosedAt   time.Time
	// ConfiguredRecords is the window size the configuration asked for.
	ConfiguredRecords int64
	// Replay is true when this window was planned by an earlier run (or
	// another replica) and is being processed again with the same id.
	Replay bool

	buffer *stream.Buffer
}

// Batches yields the window's records as Arrow record batches with
// stream.Schema(). Each batch is valid only during its iteration step.
func (w *Window) Batches() iter.Seq2[arrow.RecordBatch, error] {
	if w.buffer == nil {
		return func(func(arrow.RecordBatch, error) bool) {}
	}
	return w.buffer.Batches()
}

// Result is what a Processor makes of a window: the rows to publish and
// the privacy parameters they were released under.
type Result struct {
	Rows           []sink.Row
	Epsilon, Delta float64
}

// Processor turns a window of private records into publishable rows.
// Process must be deterministic in what it reads (the window), but need
// not be in what it returns: a replayed window is processed again and its
// earlier unwritten output is simply never published.
type Processor interface {
	Process(ctx context.Context, w *Window) (*Result, error)
}

// Describer lets a Processor record its name and parameters in the window
// ledger before it runs, so an analyst can tell which settings made a
// window's rows.
type Describer interface {
	Describe() (name string, params string)
}

type processorFactory func(cfg ProcessorConfig) Processor

// processors lists what processor.name may select.
var processors = map[string]processorFactory{
	"count": func(cfg ProcessorConfig) Processor { return &CountProcessor{RowsPerRecords: cfg.RowsPerRecords} },
	"dp":    newDPProcessor,
}

func processorNames() string {
	names := make([]string, 0, len(processors))
	for n := range processors {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// NewProcessor builds the processor the configuration names.
func NewProcessor(cfg ProcessorConfig) (Processor, error) {
	f, ok := processors[cfg.Name]
	if !ok {
		return nil, &FieldError{Field: "processor.name", Reason: fmt.Sprintf("must be one of %s, not %q", processorNames(), cfg.Name)}
	}
	return f(cfg), nil
}

// CountProcessor is the stand-in processor of the data plane: it emits
// rows derived from the window's record count and offsets only, never from
// record text, so it cannot leak anything and tests can predict its
// output exactly. It still reads every batch, so a window that cannot be
// read back (a broken spill file) fails here as it would in a real
// processor.
type CountProcessor struct {
	// RowsPerRecords: one output row per this many records (zero: 10).
	RowsPerRecords int
}

// Describe implements Describer.
func (p *CountProcessor) Describe() (string, string) {
	return "count", fmt.Sprintf(`{"rows_per_records":%d}`, p.rowsPer())
}

func (p *CountProcessor) rowsPer() int64 {
	if p.RowsPerRecords <= 0 {
		return 10
	}
	return int64(p.RowsPerRecords)
}

// Process implements Processor.
func (p *CountProcessor) Process(ctx context.Context, w *Window) (*Result, error) {
	var seen int64
	for rec, err := range w.Batches() {
		if err != nil {
			return nil, fmt.Errorf("count processor: reading window %s: %w", w.ID, err)
		}
		seen += rec.NumRows()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if seen != w.Records {
		return nil, fmt.Errorf("count processor: window %s yielded %d records, expected %d", w.ID, seen, w.Records)
	}
	n := (seen + p.rowsPer() - 1) / p.rowsPer()
	rows := make([]sink.Row, n)
	for i := range rows {
		rows[i] = sink.Row{
			Seq:              uint32(i),
			Text:             fmt.Sprintf("placeholder %d of %d for %d records at offsets %d-%d", i+1, n, seen, w.First, w.Last),
			Cluster:          -1,
			GeneratorVersion: "count/v1",
		}
	}
	return &Result{Rows: rows}, nil
}
