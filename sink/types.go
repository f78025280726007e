package sink

import "time"

// Range is an inclusive span of offsets of one topic partition.
type Range struct {
	Topic     string
	Partition int32
	First     int64 // inclusive
	Last      int64 // inclusive
}

// Status is the lifecycle state of a window.
type Status string

const (
	StatusPlanned   Status = "planned"
	StatusAbandoned Status = "abandoned"
	StatusWritten   Status = "written"
)

// rank orders statuses for version precedence: a written window can never be
// demoted by a late lease renewal or abandonment, whatever the clocks say.
func (s Status) rank() int {
	switch s {
	case StatusPlanned:
		return 1
	case StatusAbandoned:
		return 2
	case StatusWritten:
		return 3
	}
	return 0
}

// Window is one processing window: the offset ranges it covers, its
// lifecycle state and the metadata recorded when it is written. Times are
// stored with second precision (ClickHouse DateTime); zero times are stored as
// the Unix epoch and read back as zero.
type Window struct {
	ID, Group  string
	Status     Status
	Owner      string
	LeaseUntil time.Time
	Ranges     []Range

	// Counts come from offsets and dead letters: stream metadata, outside
	// the DP guarantee. Nothing derived from record content (lengths,
	// bytes) is stored, since that would be a non-DP statistic of it.
	ConfiguredRecords, Records, DeadLetters uint64

	OpenedAt, ClosedAt, WrittenAt time.Time

	Processor  string
	Params     string // JSON, opaque to the sink
	OutputRows uint64
	Epsilon    float64
	Delta      float64
	// Attempt names one processing run of the window. Its output rows carry
	// it, and the written row records which attempt was published
	// (published_instructions).
	Attempt string

	// PlannedAt is read-only: the earliest server-assigned planned_at of the
	// window's range rows. It orders concurrent plans independently of
	// client clocks.
	PlannedAt time.Time
}

// Row is one synthetic output row of a window. It must never carry raw
// private input.
type Row struct {
	Seq              uint32
	Text             string
	Cluster          int32
	GeneratorVersion string
	Epsilon, Delta   float64
}

var epoch = time.Unix(0, 0).UTC()

// toDT maps a Go time to a DateTime value: zero (and anything before 1970,
// which DateTime cannot hold) becomes the epoch.
func toDT(t time.Time) time.Time {
	if t.IsZero() || t.Before(epoch) {
		return epoch
	}
	return t.UTC()
}

// fromDT is the inverse of toDT.
func fromDT(t time.Time) time.Time {
	if t.Unix() <= 0 {
		return time.Time{}
	}
	return t.UTC()
}
