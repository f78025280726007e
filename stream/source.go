package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// SourceConfig configures a [Source]. Brokers, Topic and GroupID are
// required; zero values elsewhere get the defaults noted.
type SourceConfig struct {
	Brokers []string
	Topic   string
	GroupID string

	MinBytes      int           // fetch min bytes; 0 means 1, so fetches return as soon as data exists
	MaxBytes      int           // fetch max bytes; 0 means 10 MiB
	MaxWait       time.Duration // how long a fetch waits for MinBytes; 0 means 500ms
	QueueCapacity int           // messages buffered ahead of Fetch; 0 means 1000
	Dialer        *kafka.Dialer // nil means kafka.DefaultDialer

	// SessionTimeout is how long the group waits for a silent member
	// before giving its partitions to others: after a crash, the
	// partitions of the dead member sit idle this long. Shorter recovers
	// faster but evicts members on long GC or network pauses. 0 means 30s;
	// the heartbeat is sent every third of it (at most every 3s).
	SessionTimeout time.Duration

	// StartFromLatest makes a group with no committed offset for a partition
	// start at the end of that partition instead of the beginning. It has no
	// effect where the group has committed offsets.
	StartFromLatest bool
}

// Source reads a topic as a member of a consumer group.
//
// Delivery is at-least-once, with commits in the caller's hands: offsets are
// committed only by [Source.Commit], which the caller invokes after it has
// made its output durable. Nothing is committed in the background, so a
// crash at any point redelivers everything after the last Commit, never
// skips it.
//
// The cost of that choice: kafka-go gives no callback when a rebalance takes
// partitions away. A Fetch can return messages of a partition this member
// no longer owns, and a Commit after a rebalance can fail or be overtaken by
// the new owner. Callers must therefore treat committed offsets as a hint
// for where to resume, keep their own ledger of what they have processed
// (the connector keeps one in ClickHouse, written with its output), and skip
// redelivered messages against it.
type Source struct {
	r     *kafka.Reader
	topic string
}

// NewSource validates cfg and joins the consumer group lazily, on the first
// Fetch.
func NewSource(cfg SourceConfig) (*Source, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("stream: source: Brokers is required")
	case cfg.Topic == "":
		return nil, errors.New("stream: source: Topic is required")
	case cfg.GroupID == "":
		return nil, errors.New("stream: source: GroupID is required")
	}
	for i, b := range cfg.Brokers {
		if b == "" {
			return nil, fmt.Errorf("stream: source: Brokers[%d] is empty", i)
		}
	}
	rc := kafka.ReaderConfig{
		Brokers:       cfg.Brokers,
		Topic:         cfg.Topic,
		GroupID:       cfg.GroupID,
		MinBytes:      cfg.MinBytes,
		MaxBytes:      cfg.MaxBytes,
		MaxWait:       cfg.MaxWait,
		QueueCapacity: cfg.QueueCapacity,
		Dialer:        cfg.Dialer,
		// Zero means synchronous commits; a positive interval would commit
		// from a background goroutine, before output is durable.
		CommitInterval: 0,
		StartOffset:    kafka.FirstOffset,
	}
	if rc.MinBytes == 0 {
		rc.MinBytes = 1
	}
	if rc.MaxBytes == 0 {
		rc.MaxBytes = 10 << 20
	}
	if rc.MaxWait == 0 {
		rc.MaxWait = 500 * time.Millisecond
	}
	if rc.QueueCapacity == 0 {
		rc.QueueCapacity = 1000
	}
	if cfg.StartFromLatest {
		rc.StartOffset = kafka.LastOffset
	}
	if cfg.SessionTimeout > 0 {
		rc.SessionTimeout = cfg.SessionTimeout
		rc.HeartbeatInterval = min(3*time.Second, cfg.SessionTimeout/3)
	}
	// kafka.NewReader panics on a bad config; turn that into an error.
	if err := rc.Validate(); err != nil {
		return nil, fmt.Errorf("stream: source: %w", err)
	}
	return &Source{r: kafka.NewReader(rc), topic: cfg.Topic}, nil
}

// Fetch returns the next message without committing it. It blocks until a
// message arrives, ctx ends, or the source is closed (io.EOF).
func (s *Source) Fetch(ctx context.Context) (kafka.Message, error) {
	m, err := s.r.FetchMessage(ctx)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("stream: fetch from %s: %w", s.topic, err)
	}
	return m, nil
}

// Commit synchronously commits, for each partition, the offset after the
// highest of msgs. Call it only once the output for msgs (and for every
// earlier message of the same partitions) is durable.
func (s *Source) Commit(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := s.r.CommitMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("stream: commit %d messages on %s: %w", len(msgs), s.topic, err)
	}
	return nil
}

// Stats returns the reader's counters since the previous call.
func (s *Source) Stats() kafka.ReaderStats { return s.r.Stats() }

// Close leaves the group and closes connections. Uncommitted messages will
// be redelivered to whichever member gets their partitions.
func (s *Source) Close() error {
	if err := s.r.Close(); err != nil {
		return fmt.Errorf("stream: close source on %s: %w", s.topic, err)
	}
	return nil
}
