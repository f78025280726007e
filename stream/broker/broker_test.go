package broker

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestStartAutoCreatesTopics(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		topic      string
		partitions int
	}{
		{"seeded", Options{Listen: "127.0.0.1:0", Partitions: 3, Topics: []string{"a"}}, "a", 3},
		{"auto default", Options{Listen: "127.0.0.1:0"}, "b", 1},
		{"auto configured", Options{Listen: "127.0.0.1:0", Partitions: 4}, "c", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b, err := Start(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if _, port, _ := net.SplitHostPort(b.Addr()); port == "0" || !strings.HasPrefix(b.Addr(), "127.0.0.1:") {
				t.Fatalf("Addr = %q", b.Addr())
			}
			w := &kafka.Writer{Addr: kafka.TCP(b.Addr()), Topic: tt.topic, AllowAutoTopicCreation: true, BatchTimeout: time.Millisecond}
			defer w.Close()
			if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			conn, err := kafka.DialContext(ctx, "tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			parts, err := conn.ReadPartitions(tt.topic)
			if err != nil || len(parts) != tt.partitions {
				t.Fatalf("%d partitions (err %v), want %d", len(parts), err, tt.partitions)
			}
		})
	}
}

func TestStartBadAddress(t *testing.T) {
	if _, err := Start(Options{Listen: "nope"}); err == nil {
		t.Fatal("Start accepted an address without a port")
	}
	b, err := Start(Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := Start(Options{Listen: b.Addr()}); err == nil {
		t.Fatal("second broker on the same port started")
	}
	b.Close() // idempotent
}

func TestStartRejectsBadSecurityOptions(t *testing.T) {
	for name, opts := range map[string]Options{
		"unknown mechanism": {Listen: "127.0.0.1:0", SASLUsers: []SASLUser{{Mechanism: "GSSAPI", Username: "u", Password: "p"}}},
		"no password":       {Listen: "127.0.0.1:0", SASLUsers: []SASLUser{{Mechanism: "PLAIN", Username: "u"}}},
		"TLS without cert":  {Listen: "127.0.0.1:0", TLS: &tls.Config{}},
	} {
		if b, err := Start(opts); err == nil {
			b.Close()
			t.Errorf("%s: want an error", name)
		}
	}
}
