package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/stream/broker"
	"github.com/segmentio/kafka-go"
)

func startBroker(t testing.TB, partitions int, topics ...string) string {
	t.Helper()
	b, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Partitions: partitions, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// produce writes n messages with values "msg-<i>" spread over the topic's
// partitions.
func produce(t *testing.T, ctx context.Context, addr, topic string, n int) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.RoundRobin{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Value: []byte("msg-" + strconv.Itoa(i))}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func fetchN(t *testing.T, ctx context.Context, src *Source, n int) []kafka.Message {
	t.Helper()
	out := make([]kafka.Message, 0, n)
	for len(out) < n {
		m, err := src.Fetch(ctx)
		if err != nil {
			t.Fatalf("fetch after %d of %d: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func TestSourceConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   SourceConfig
		field string
	}{
		{"brokers", SourceConfig{Topic: "t", GroupID: "g"}, "Brokers"},
		{"empty broker", SourceConfig{Brokers: []string{""}, Topic: "t", GroupID: "g"}, "Brokers[0]"},
		{"topic", SourceConfig{Brokers: []string{"b:9092"}, GroupID: "g"}, "Topic"},
		{"group", SourceConfig{Brokers: []string{"b:9092"}, Topic: "t"}, "GroupID"},
		{"bytes", SourceConfig{Brokers: []string{"b:9092"}, Topic: "t", GroupID: "g", MinBytes: 10, MaxBytes: 5}, "minimum batch size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSource(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("NewSource error = %v, want one naming %s", err, tt.field)
			}
		})
	}
}

func TestSourceResumesFromCommitted(t *testing.T) {
	const topic, n = "instructions", 1000
	ctx := testContext(t)
	addr := startBroker(t, 3, topic)
	produce(t, ctx, addr, topic, n)

	cfg := SourceConfig{Brokers: []string{addr}, Topic: topic, GroupID: "connector", MaxWait: 100 * time.Millisecond}
	src, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := fetchN(t, ctx, src, n)
	partitions := map[int]bool{}
	for _, m := range first {
		partitions[m.Partition] = true
	}
	if len(partitions) != 3 {
		t.Errorf("messages came from %d partitions, want 3", len(partitions))
	}
	// Within a partition fetch order is offset order, so the first half of
	// what we fetched is a prefix of every partition.
	if err := src.Commit(ctx, first[:n/2]...); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	src, err = NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	second := fetchN(t, ctx, src, n/2)
	key := func(m kafka.Message) string { return fmt.Sprintf("%d/%d", m.Partition, m.Offset) }
	var want, got []string
	for _, m := range first[n/2:] {
		want = append(want, key(m))
	}
	for _, m := range second {
		got = append(got, key(m))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("after reopening got %d messages that differ from the %d uncommitted ones", len(got), len(want))
	}

	// Nothing more: no duplicates of committed messages trail behind.
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if m, err := src.Fetch(short); err == nil {
		t.Fatalf("unexpected extra message %s", key(m))
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch = %v, want deadline exceeded", err)
	}
	if err := src.Commit(ctx, second...); err != nil {
		t.Fatal(err)
	}
	_ = src.Stats()
}

func TestDeadLetterRoundTrip(t *testing.T) {
	ctx := testContext(t)
	addr := startBroker(t, 1)
	dl := NewDeadLetter([]string{addr}, "instructions.dlq", nil)
	defer dl.Close()

	orig := kafka.Message{
		Topic: "instructions", Partition: 2, Offset: 12345,
		Key:     []byte("user-1"),
		Value:   []byte("{\"text\": \"" + secret + "\xff\"}"),
		Headers: []kafka.Header{{Key: "trace", Value: []byte("abc")}},
		Time:    time.UnixMilli(1700000000000),
	}
	_, decErr := Decoder{}.Decode(orig)
	reason, _ := ReasonOf(decErr)
	if err := dl.Send(ctx, orig, reason, decErr.Error()); err != nil {
		t.Fatal(err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: "instructions.dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	got, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Key) != string(orig.Key) || string(got.Value) != string(orig.Value) {
		t.Errorf("key/value not copied byte for byte")
	}
	if !got.Time.Equal(orig.Time) {
		t.Errorf("time = %v, want %v", got.Time, orig.Time)
	}
	headers := map[string]string{}
	for _, h := range got.Headers {
		headers[h.Key] = string(h.Value)
	}
	want := map[string]string{
		"trace":               "abc",
		HeaderReason:          string(ReasonInvalidUTF8),
		HeaderDetail:          decErr.Error(),
		HeaderSourceTopic:     "instructions",
		HeaderSourcePartition: "2",
		HeaderSourceOffset:    "12345",
	}
	for k, v := range want {
		if headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, headers[k], v)
		}
	}
	if strings.Contains(headers[HeaderDetail], secret) {
		t.Error("detail header leaks content")
	}
}

func TestProduceJSONL(t *testing.T) {
	ctx := testContext(t)
	addr := startBroker(t, 1)
	var lines []string
	for i := range 2500 {
		lines = append(lines, fmt.Sprintf(`{"id":"p%d","user_id":"u%d","text":"prompt %d"}`, i, i%5, i))
		if i%1000 == 0 {
			lines = append(lines, "", "   ")
		}
	}
	lines = append(lines, `{"text":"no key here"}`, `{"user_id":42,"text":"numeric key"}`)
	var mu sync.Mutex
	var progress []int64
	n, err := ProduceJSONL(ctx, strings.NewReader(strings.Join(lines, "\n")+"\n"), ProduceOptions{
		Brokers: []string{addr}, Topic: "prompts", KeyField: "user_id", BatchSize: 300, Partitions: 3,
		Progress: func(n int64) { mu.Lock(); progress = append(progress, n); mu.Unlock() },
	})
	const want = 2502
	if err != nil || n != want {
		t.Fatalf("ProduceJSONL = %d, %v; want %d", n, err, want)
	}
	if len(progress) == 0 || progress[len(progress)-1] != want || !slices.IsSorted(progress) {
		t.Errorf("progress calls = %v", progress)
	}

	src, err := NewSource(SourceConfig{Brokers: []string{addr}, Topic: "prompts", GroupID: "check", MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := fetchN(t, ctx, src, want)
	values := map[string]string{}
	parts := map[int]bool{}
	for _, m := range got {
		values[string(m.Value)] = string(m.Key)
		parts[m.Partition] = true
	}
	if len(parts) != 3 {
		t.Errorf("topic created with %d partitions in use, want 3", len(parts))
	}
	for i, l := range lines[:len(lines)-2] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		k, ok := values[l]
		if !ok {
			t.Fatalf("line %d missing", i)
		}
		if !strings.HasPrefix(k, "u") {
			t.Fatalf("line %d key = %q", i, k)
		}
	}
	if k := values[`{"text":"no key here"}`]; k != "" {
		t.Errorf("keyless line got key %q", k)
	}
	if k := values[`{"user_id":42,"text":"numeric key"}`]; k != "42" {
		t.Errorf("numeric key = %q", k)
	}
}

func TestProduceJSONLRejects(t *testing.T) {
	ctx := testContext(t)
	addr := startBroker(t, 1)
	good := `{"text":"fine"}`
	tests := []struct {
		name, bad, want string
	}{
		{"not json", `{"text":"` + secret, "line 3"},
		{"not object", `["` + secret + `"]`, "line 3"},
		{"text not string", `{"text":{"` + secret + `":1}}`, "line 3"},
		{"no text", `{"prompt":"` + secret + `"}`, "line 3"},
		{"bad key type", `{"text":"` + secret + `","user_id":{"a":1}}`, "line 3"},
		{"too large", `{"text":"` + secret + strings.Repeat("x", 2<<20) + `"}`, "line 3"},
		{"too long for a line", `{"text":"` + secret + strings.Repeat("x", 17<<20) + `"}`, "line 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.Join([]string{good, good, tt.bad, good}, "\n")
			_, err := ProduceJSONL(ctx, strings.NewReader(in), ProduceOptions{Brokers: []string{addr}, Topic: "rejects", KeyField: "user_id"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret[:8]) {
				t.Fatalf("error leaks content: %v", err)
			}
		})
	}
	if _, err := ProduceJSONL(ctx, strings.NewReader(good), ProduceOptions{Topic: "x"}); err == nil {
		t.Error("no error without brokers")
	}
}

func TestBrokerCreateTopic(t *testing.T) {
	ctx := testContext(t)
	b, err := broker.Start(broker.Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.CreateTopic(ctx, "five", 5); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic(ctx, "five", 5); err == nil {
		t.Error("creating an existing topic succeeded")
	}
	if err := EnsureTopic(ctx, []string{b.Addr()}, "five", 2, nil); err != nil {
		t.Errorf("EnsureTopic on existing topic: %v", err)
	}
	conn, err := kafka.DialContext(ctx, "tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions("five")
	if err != nil || len(parts) != 5 {
		t.Fatalf("ReadPartitions = %d partitions, %v; want 5", len(parts), err)
	}
}
