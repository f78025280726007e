package stream

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/segmentio/kafka-go"
)

// TopicOutput writes a window's synthetic instructions to an output topic.
// It is the Kafka half of exactly-once delivery per window: every message
// of one window goes to one partition (chosen from the window id), so the
// connector can note that partition's end offset before producing, and
// after a crash read back from there to find which of the window's
// messages already landed and produce only the rest. kafka-go has no
// transactions, which is why the read-back exists.
type TopicOutput struct {
	brokers   []string
	topic     string
	client    *kafka.Client
	transport kafka.RoundTripper // shared by the client and every writer
	dialer    *kafka.Dialer
}

// NewTopicOutput returns an output to topic on brokers. sec (nil: plaintext)
// secures every connection it makes.
func NewTopicOutput(brokers []string, topic string, sec *Security) *TopicOutput {
	tr := sec.Transport()
	if tr == nil {
		// One transport for the client and the per-window writers, so
		// Close can release all of their connections.
		tr = &kafka.Transport{}
	}
	return &TopicOutput{brokers: brokers, topic: topic, transport: tr, dialer: sec.Dialer(),
		client: &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: tr}}
}

// Topic is the output topic's name.
func (o *TopicOutput) Topic() string { return o.topic }

// Ensure creates the topic (one partition) when the cluster does not have
// it yet.
func (o *TopicOutput) Ensure(ctx context.Context) error {
	md, err := o.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{o.topic}})
	if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) > 0 {
		return nil
	}
	res, err := o.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: o.topic, NumPartitions: 1, ReplicationFactor: 1}}})
	if err != nil {
		return fmt.Errorf("stream: create output topic %s: %w", o.topic, err)
	}
	if e := res.Errors[o.topic]; e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
		return fmt.Errorf("stream: create output topic %s: %w", o.topic, e)
	}
	return nil
}

// PartitionFor returns the partition that holds window's messages and
// that partition's current end offset (the offset the next message gets).
func (o *TopicOutput) PartitionFor(ctx context.Context, window string) (partition int, end int64, err error) {
	md, err := o.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{o.topic}})
	if err != nil {
		return 0, 0, fmt.Errorf("stream: output topic %s metadata: %w", o.topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) == 0 {
		return 0, 0, fmt.Errorf("stream: output topic %s has no partitions (does it exist?)", o.topic)
	}
	n := len(md.Topics[0].Partitions)
	h := fnv.New32a()
	h.Write([]byte(window))
	partition = int(h.Sum32() % uint32(n))
	end, err = o.endOffset(ctx, partition)
	return partition, end, err
}

func (o *TopicOutput) endOffset(ctx context.Context, partition int) (int64, error) {
	res, err := o.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{o.topic: {kafka.LastOffsetOf(partition)}},
	})
	if err != nil {
		return 0, fmt.Errorf("stream: output topic %s/%d end offset: %w", o.topic, partition, err)
	}
	for _, p := range res.Topics[o.topic] {
		if p.Partition == partition {
			if p.Error != nil {
				return 0, fmt.Errorf("stream: output topic %s/%d end offset: %w", o.topic, partition, p.Error)
			}
			return p.LastOffset, nil
		}
	}
	return 0, fmt.Errorf("stream: output topic %s/%d: no offset returned", o.topic, partition)
}

// fixedPartition sends every message to one partition.
type fixedPartition int

func (p fixedPartition) Balance(kafka.Message, ...int) int { return int(p) }

// Produce writes msgs to partition, synchronously, acknowledged by all
// in-sync replicas, in order.
func (o *TopicOutput) Produce(ctx context.Context, partition int, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	w := &kafka.Writer{
		Addr: kafka.TCP(o.brokers...), Topic: o.topic, Balancer: fixedPartition(partition), Transport: o.transport,
		RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchTimeout: time.Millisecond,
		MaxAttempts: 1, // a retried batch could land twice; the read-back is the retry
	}
	err := w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// kafka-go's write errors carry broker codes, never message bytes.
		return fmt.Errorf("stream: produce %d messages to %s/%d: %w", len(msgs), o.topic, partition, err)
	}
	return nil
}

// Scan calls fn for every message of partition from offset from up to
// the partition's current end.
func (o *TopicOutput) Scan(ctx context.Context, partition int, from int64, fn func(kafka.Message)) error {
	end, err := o.endOffset(ctx, partition)
	if err != nil {
		return err
	}
	if from >= end {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: o.brokers, Topic: o.topic, Partition: partition, MaxWait: 100 * time.Millisecond, Dialer: o.dialer})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return fmt.Errorf("stream: scan %s/%d: %w", o.topic, partition, err)
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("stream: scan %s/%d at %d: %w", o.topic, partition, from, err)
		}
		fn(m)
		if m.Offset >= end-1 {
			return nil
		}
	}
}

// Close releases the client's idle connections.
func (o *TopicOutput) Close() error {
	if t, ok := o.transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
	return nil
}
