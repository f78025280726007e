package stream

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Header names set on dead letters. The original key, value, headers and
// timestamp are kept; these are appended.
const (
	HeaderReason          = "dpinstruct-reason"
	HeaderDetail          = "dpinstruct-detail"
	HeaderSourceTopic     = "dpinstruct-source-topic"
	HeaderSourcePartition = "dpinstruct-source-partition"
	HeaderSourceOffset    = "dpinstruct-source-offset"
)

// DeadLetter forwards rejected messages to a dead-letter topic on the same
// cluster as the source. It is the one place this package writes message
// content: the topic sits behind the same access control as the source, and
// keeping the bytes intact is what lets an operator replay them after a fix.
//
// Sends are synchronous and acknowledged by all in-sync replicas, so once
// Send returns nil the caller may commit the source offset without losing the
// message. A DeadLetter is safe for concurrent use.
type DeadLetter struct {
	w *kafka.Writer
}

// NewDeadLetter returns a sender to topic. A nil transport means
// kafka.DefaultTransport; pass a *kafka.Transport (Security.Transport) to
// set TLS, SASL or timeouts; Close releases its idle connections. The
// topic is created on first use if the cluster allows it.
func NewDeadLetter(brokers []string, topic string, transport kafka.RoundTripper) *DeadLetter {
	return &DeadLetter{w: &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Transport:    transport,
		Balancer:     &kafka.Hash{}, // same key, same partition: per-user order survives
		RequiredAcks: kafka.RequireAll,
		// A synchronous write of a batch that is not full waits BatchTimeout;
		// a batch of one is always full, so Send costs one round trip.
		BatchSize:              1,
		BatchTimeout:           time.Millisecond,
		AllowAutoTopicCreation: true,
	}}
}

// Send writes m to the dead-letter topic. detail is free text for operators
// (an error message from this package is a good choice); since dead letters
// already hold the message, it must still not be used to copy content
// elsewhere.
func (d *DeadLetter) Send(ctx context.Context, m kafka.Message, reason Reason, detail string) error {
	headers := make([]kafka.Header, 0, len(m.Headers)+5)
	headers = append(headers, m.Headers...)
	headers = append(headers,
		kafka.Header{Key: HeaderReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderDetail, Value: []byte(detail)},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		kafka.Header{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
	)
	out := kafka.Message{Key: m.Key, Value: m.Value, Headers: headers, Time: m.Time}
	if err := d.w.WriteMessages(ctx, out); err != nil {
		// kafka-go's write errors carry broker error codes, never message
		// bytes, so wrapping them keeps the privacy rule.
		return fmt.Errorf("stream: dead letter %s/%d@%d to %s: %w", m.Topic, m.Partition, m.Offset, d.w.Topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (d *DeadLetter) Close() error {
	err := d.w.Close()
	// The writer closes only a transport it made itself.
	if t, ok := d.w.Transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
	if err != nil {
		return fmt.Errorf("stream: close dead letter writer: %w", err)
	}
	return nil
}
