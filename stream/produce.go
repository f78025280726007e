package stream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// maxLineBytes bounds one input line of ProduceJSONL.
const maxLineBytes = 16 << 20

// ProduceOptions configures [ProduceJSONL]. Brokers and Topic are required.
type ProduceOptions struct {
	Brokers []string
	Topic   string

	// KeyField names a top-level field (string or number) whose value
	// becomes the message key, e.g. "user_id". Empty, or a line without the
	// field, means no key.
	KeyField string

	BatchSize       int                // messages per produce batch; 0 means 1000
	Partitions      int                // partitions if the topic must be created; 0 means the broker default
	MaxMessageBytes int                // largest line sent; 0 means DefaultMaxMessageBytes
	Transport       kafka.RoundTripper // nil means kafka.DefaultTransport

	// Progress, if set, is called with the running count of messages the
	// cluster has acknowledged. Calls are serialized; keep it quick.
	Progress func(n int64)
}

// ProduceJSONL sends each non-blank line of r, unchanged, as one message to
// opts.Topic, creating the topic if missing, and returns how many messages
// the cluster acknowledged. Each line must be a JSON object with a string
// "text" field; a line that is not stops the run with an error naming the
// line number only.
//
// Writes are batched, snappy-compressed and acknowledged by all in-sync
// replicas. Up to a few batches are in flight at once, so on error some
// lines after the failing one may have been sent.
func ProduceJSONL(ctx context.Context, r io.Reader, opts ProduceOptions) (n int64, err error) {
	if len(opts.Brokers) == 0 {
		return 0, errors.New("stream: produce: Brokers is required")
	}
	if opts.Topic == "" {
		return 0, errors.New("stream: produce: Topic is required")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}

	createErr := EnsureTopic(ctx, opts.Brokers, opts.Topic, opts.Partitions, opts.Transport)

	fl := newFlight(ctx, int64(opts.BatchSize)*8, 64<<20, opts.Progress)
	w := &kafka.Writer{
		Addr:         kafka.TCP(opts.Brokers...),
		Topic:        opts.Topic,
		Transport:    opts.Transport,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		Compression:  kafka.Snappy,
		BatchSize:    opts.BatchSize,
		// Room for the key and record overhead on top of the largest value.
		BatchBytes: int64(opts.MaxMessageBytes) + 4<<10,
		// Asynchronous with our own flow control: a synchronous write of a
		// partly filled batch waits BatchTimeout, which would cap throughput.
		Async:                  true,
		BatchTimeout:           10 * time.Millisecond,
		AllowAutoTopicCreation: true,
		Completion:             fl.complete,
	}

	sendErr := produceLines(ctx, r, opts, w, fl)
	closeErr := w.Close() // waits for every in-flight batch
	n, writeErr := fl.result()

	switch {
	case writeErr != nil:
		err = fmt.Errorf("stream: produce to %s: %w", opts.Topic, writeErr)
		if createErr != nil {
			err = fmt.Errorf("%w (creating the topic also failed: %v)", err, createErr)
		}
	case sendErr != nil:
		err = sendErr
	case closeErr != nil:
		err = fmt.Errorf("stream: produce to %s: close writer: %w", opts.Topic, closeErr)
	}
	return n, err
}

func produceLines(ctx context.Context, r io.Reader, opts ProduceOptions, w *kafka.Writer, fl *flight) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	batch := make([]kafka.Message, 0, opts.BatchSize)
	var batchBytes int64
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := fl.acquire(len(batch), batchBytes); err != nil {
			return err
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			fl.release(len(batch), batchBytes)
			return fmt.Errorf("stream: produce to %s: %w", opts.Topic, err)
		}
		// The writer keeps the slice's messages; start a new one.
		batch, batchBytes = make([]kafka.Message, 0, opts.BatchSize), 0
		return nil
	}

	line := 0
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		if len(raw) > opts.MaxMessageBytes {
			return fmt.Errorf("stream: produce: line %d: %d bytes exceeds the %d byte message limit", line, len(raw), opts.MaxMessageBytes)
		}
		key, err := lineKey(raw, opts.KeyField)
		if err != nil {
			return fmt.Errorf("stream: produce: line %d: %w", line, err)
		}
		// The scanner reuses its buffer; the writer needs the bytes until the
		// batch is acknowledged.
		batch = append(batch, kafka.Message{Key: key, Value: bytes.Clone(raw)})
		batchBytes += int64(len(raw) + len(key))
		if len(batch) == opts.BatchSize {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("stream: produce: line %d: longer than %d bytes", line+1, maxLineBytes)
		}
		return fmt.Errorf("stream: produce: read input after line %d: %w", line, err)
	}
	return send()
}

// lineKey checks that raw is a JSON object with a string "text" and returns
// the key taken from keyField. Errors describe the shape only.
func lineKey(raw []byte, keyField string) ([]byte, error) {
	var textRaw, keyRaw []byte
	if detail := walkObject(raw, func(k, v []byte) {
		switch {
		case string(k) == "text":
			textRaw = v
		case keyField != "" && string(k) == keyField:
			keyRaw = v
		}
	}); detail != "" {
		return nil, errors.New(detail)
	}
	if textRaw == nil || textRaw[0] != '"' {
		return nil, errors.New(`"text" is missing or not a string`)
	}
	if keyRaw == nil || isNull(keyRaw) {
		return nil, nil
	}
	key, ok := stringOrNumber(keyRaw)
	if !ok {
		return nil, fmt.Errorf("key field %q is not a string or a number", keyField)
	}
	return []byte(key), nil
}

// flight bounds the messages and bytes handed to an asynchronous writer but
// not yet acknowledged, and collects the outcome.
type flight struct {
	ctx              context.Context
	maxMsgs, maxByte int64
	progress         func(int64)

	mu       sync.Mutex
	cond     *sync.Cond
	msgs     int64
	byteSize int64
	acked    int64
	err      error
	stop     func() bool
}

func newFlight(ctx context.Context, maxMsgs, maxBytes int64, progress func(int64)) *flight {
	f := &flight{ctx: ctx, maxMsgs: maxMsgs, maxByte: maxBytes, progress: progress}
	f.cond = sync.NewCond(&f.mu)
	f.stop = context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	return f
}

// acquire waits until the batch fits in flight (an oversized batch goes
// alone), then counts it.
func (f *flight) acquire(msgs int, size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.msgs > 0 && (f.msgs+int64(msgs) > f.maxMsgs || f.byteSize+size > f.maxByte) && f.err == nil && f.ctx.Err() == nil {
		f.cond.Wait()
	}
	if f.err != nil {
		return f.err
	}
	if err := f.ctx.Err(); err != nil {
		return err
	}
	f.msgs += int64(msgs)
	f.byteSize += size
	return nil
}

func (f *flight) release(msgs int, size int64) {
	f.mu.Lock()
	f.msgs -= int64(msgs)
	f.byteSize -= size
	f.cond.Broadcast()
	f.mu.Unlock()
}

// complete is the writer's Completion callback, run once per partition
// batch.
func (f *flight) complete(msgs []kafka.Message, err error) {
	var size int64
	for i := range msgs {
		size += int64(len(msgs[i].Value) + len(msgs[i].Key))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs -= int64(len(msgs))
	f.byteSize -= size
	if err != nil {
		if f.err == nil {
			f.err = err
		}
	} else {
		f.acked += int64(len(msgs))
		if f.progress != nil {
			f.progress(f.acked)
		}
	}
	f.cond.Broadcast()
}

func (f *flight) result() (int64, error) {
	f.stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acked, f.err
}

// EnsureTopic creates topic with the given partition count (0 means the
// broker default) and the broker's default replication, doing nothing if it
// already exists. A nil transport means kafka.DefaultTransport.
func EnsureTopic(ctx context.Context, brokers []string, topic string, partitions int, transport kafka.RoundTripper) error {
	if partitions <= 0 {
		partitions = -1
	}
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: -1}},
	})
	if err != nil {
		return fmt.Errorf("stream: create topic %s: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("stream: create topic %s: %w", topic, err)
	}
	return nil
}
