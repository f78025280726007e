package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/segmentio/kafka-go"

	"github.com/dpinstruct/dpinstruct/sink"
)

// Output is the optional output topic; stream.TopicOutput implements it.
type Output interface {
	Topic() string
	PartitionFor(ctx context.Context, window string) (partition int, end int64, err error)
	Produce(ctx context.Context, partition int, msgs []kafka.Message) error
	Scan(ctx context.Context, partition int, from int64, fn func(kafka.Message)) error
}

// Deliveries records output-topic delivery state; sink.Client implements it.
type Deliveries interface {
	Delivery(ctx context.Context, window, topic string) (sink.Delivery, bool, error)
	RecordDelivery(ctx context.Context, d sink.Delivery) error
	WindowRows(ctx context.Context, window, attempt string) ([]sink.Row, error)
}

// Headers on output messages.
const (
	HeaderWindow  = "dpinstruct-window"
	HeaderAttempt = "dpinstruct-attempt"
	HeaderSeq     = "dpinstruct-seq"
)

// outputMessage is the value of one output message: a released synthetic
// instruction (DP output) and where it came from.
type outputMessage struct {
	WindowID         string  `json:"window_id"`
	Seq              uint32  `json:"seq"`
	Text             string  `json:"text"`
	Cluster          int32   `json:"cluster"`
	GeneratorVersion string  `json:"generator_version"`
	Epsilon          float64 `json:"epsilon"`
	Delta            float64 `json:"delta"`
}

// deliver produces a written window's rows to the output topic exactly
// once per window id: it records the output partition's end offset before
// producing; if a crash interrupts the delivery, the next run reads the
// partition back from that offset and produces only the rows that are not
// there. It runs after the window is durably written and before its
// offsets are committed. rows may be nil (they are read back from
// ClickHouse).
func (c *Connector) deliver(ctx context.Context, w sink.Window, rows []sink.Row) error {
	if c.deps.Output == nil {
		return nil
	}
	topic := c.deps.Output.Topic()
	d, found, err := c.deps.Deliveries.Delivery(ctx, w.ID, topic)
	if err != nil {
		return fmt.Errorf("output topic: window %s: %w", w.ID, err)
	}
	if found && d.Done {
		return nil
	}
	have := map[uint32]bool{}
	if found {
		err := c.deps.Output.Scan(ctx, int(d.Partition), d.StartOffset, func(m kafka.Message) {
			if header(m, HeaderWindow) == w.ID && header(m, HeaderAttempt) == d.Attempt {
				if s, err := strconv.ParseUint(header(m, HeaderSeq), 10, 32); err == nil {
					have[uint32(s)] = true
				}
			}
		})
		if err != nil {
			return fmt.Errorf("output topic: resuming window %s: %w", w.ID, err)
		}
		c.log.Info("resuming an interrupted output delivery", "window", w.ID, "already_delivered", len(have))
	} else {
		p, end, err := c.deps.Output.PartitionFor(ctx, w.ID)
		if err != nil {
			return fmt.Errorf("output topic: window %s: %w", w.ID, err)
		}
		d = sink.Delivery{WindowID: w.ID, Attempt: w.Attempt, Topic: topic, Partition: int32(p), StartOffset: end}
		if err := c.deps.Deliveries.RecordDelivery(ctx, d); err != nil {
			return fmt.Errorf("output topic: window %s: %w", w.ID, err)
		}
	}
	if rows == nil {
		if rows, err = c.deps.Deliveries.WindowRows(ctx, w.ID, d.Attempt); err != nil {
			return fmt.Errorf("output topic: window %s: %w", w.ID, err)
		}
	}
	var msgs []kafka.Message
	for _, r := range rows {
		if have[r.Seq] {
			continue
		}
		value, err := json.Marshal(outputMessage{WindowID: w.ID, Seq: r.Seq, Text: r.Text, Cluster: r.Cluster,
			GeneratorVersion: r.GeneratorVersion, Epsilon: w.Epsilon, Delta: w.Delta})
		if err != nil {
			return fmt.Errorf("output topic: window %s: %w", w.ID, err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(w.ID), Value: value, Headers: []kafka.Header{
			{Key: HeaderWindow, Value: []byte(w.ID)},
			{Key: HeaderAttempt, Value: []byte(d.Attempt)},
			{Key: HeaderSeq, Value: strconv.AppendUint(nil, uint64(r.Seq), 10)},
		}})
	}
	// The fault point sits mid-delivery: half the messages are out.
	half := len(msgs) / 2
	if err := c.deps.Output.Produce(ctx, int(d.Partition), msgs[:half]); err != nil {
		return fmt.Errorf("output topic: window %s: %w", w.ID, err)
	}
	c.faults.hit("mid-output", w.ID, c.log)
	if err := c.deps.Output.Produce(ctx, int(d.Partition), msgs[half:]); err != nil {
		return fmt.Errorf("output topic: window %s: %w", w.ID, err)
	}
	d.Done = true
	if err := c.deps.Deliveries.RecordDelivery(ctx, d); err != nil {
		return fmt.Errorf("output topic: window %s: %w", w.ID, err)
	}
	return nil
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
