// Package broker runs an in-process, Kafka-protocol-compatible broker for
// demos and tests, built on franz-go's kfake. It keeps everything in memory
// and is single-node: it is not durable and not meant for production data.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultListen is the address used when Options.Listen is empty.
const DefaultListen = "127.0.0.1:9092"

// Options configures [Start]. The zero value listens on DefaultListen with
// one partition per topic.
type Options struct {
	// Listen is host:port; port 0 picks a free port (see Broker.Addr).
	// The address is also what the broker advertises to clients, so it must
	// be reachable by them: prefer a concrete host over 0.0.0.0.
	Listen string

	// Partitions is the partition count of topics created implicitly, by
	// Topics or by a client's auto-creation; 0 means 1.
	Partitions int

	// Topics are created at start.
	Topics []string

	// SASLUsers, when not empty, makes the broker require SASL: a client
	// must authenticate as one of them (mechanism PLAIN, SCRAM-SHA-256 or
	// SCRAM-SHA-512) before any other request. Each is a superuser.
	SASLUsers []SASLUser

	// TLS, when set, makes the listener speak TLS only, with this server
	// configuration (its Certificates at least).
	TLS *tls.Config
}

// SASLUser is one account of a SASL-enabled broker.
type SASLUser struct {
	Mechanism, Username, Password string
}

// Broker is a running in-process broker.
type Broker struct {
	c         *kfake.Cluster
	addr      string
	transport kafka.RoundTripper // nil: plaintext, no SASL
}

// Start listens and serves until Close.
func Start(opts Options) (*Broker, error) {
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 1
	}
	if _, _, err := net.SplitHostPort(opts.Listen); err != nil {
		return nil, fmt.Errorf("broker: listen address %q: %w", opts.Listen, err)
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake always asks for 127.0.0.1 on a random port; listen where the
		// caller asked instead.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, opts.Listen)
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(opts.Partitions),
		kfake.ClusterID("dpinstruct"),
	}
	if len(opts.Topics) > 0 {
		kopts = append(kopts, kfake.SeedTopics(int32(opts.Partitions), opts.Topics...))
	}
	if len(opts.SASLUsers) > 0 {
		kopts = append(kopts, kfake.EnableSASL())
		for _, u := range opts.SASLUsers {
			switch u.Mechanism {
			case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			default:
				return nil, fmt.Errorf("broker: SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", u.Mechanism)
			}
			if u.Username == "" || u.Password == "" {
				return nil, errors.New("broker: a SASL user needs a username and a password")
			}
			kopts = append(kopts, kfake.Superuser(u.Mechanism, u.Username, u.Password))
		}
	}
	if opts.TLS != nil {
		if len(opts.TLS.Certificates) == 0 && opts.TLS.GetCertificate == nil {
			return nil, errors.New("broker: TLS needs a server certificate")
		}
		kopts = append(kopts, kfake.TLS(opts.TLS))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("broker: start on %s: %w", opts.Listen, err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		c.Close()
		return nil, errors.New("broker: expected exactly one listener")
	}
	b := &Broker{c: c, addr: addrs[0]}
	// CreateTopic talks to the broker as its own client: over TLS without
	// checking the certificate (it is this process's own listener) and as
	// the first SASL user.
	if opts.TLS != nil || len(opts.SASLUsers) > 0 {
		tr := &kafka.Transport{}
		if opts.TLS != nil {
			tr.TLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback to our own listener
		}
		if len(opts.SASLUsers) > 0 {
			u := opts.SASLUsers[0]
			if u.Mechanism == "PLAIN" {
				tr.SASL = plain.Mechanism{Username: u.Username, Password: u.Password}
			} else {
				algo := scram.SHA256
				if u.Mechanism == "SCRAM-SHA-512" {
					algo = scram.SHA512
				}
				m, err := scram.Mechanism(algo, u.Username, u.Password)
				if err != nil {
					c.Close()
					return nil, errors.New("broker: SASL user: username or password is not valid SASLprep text")
				}
				tr.SASL = m
			}
		}
		b.transport = tr
	}
	if err := b.awaitServing(context.Background(), readyTimeout); err != nil {
		c.Close()
		return nil, err
	}
	return b, nil
}

// readyTimeout bounds how long Start waits for its own broker to answer.
const readyTimeout = 10 * time.Second

// awaitServing returns once the broker answers a real Kafka request
// (Metadata, through the same TLS and SASL a client uses), not merely once
// its port is open: whoever is told "listening" (the `broker` command's
// line, a demo script, a test) may send a request at once.
func (b *Broker) awaitServing(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(b.addr), Transport: b.transport, Timeout: timeout}
	for {
		_, err := c.Metadata(ctx, &kafka.MetadataRequest{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker: started on %s but does not answer a metadata request within %s: %w", b.addr, timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Addr is the host:port clients should dial, with the real port when
// Options.Listen asked for port 0.
func (b *Broker) Addr() string { return b.addr }

// CreateTopic creates a topic with the given partition count (0 means the
// broker's default). It is an error if the topic exists.
func (b *Broker) CreateTopic(ctx context.Context, name string, partitions int) error {
	if partitions <= 0 {
		partitions = -1
	}
	c := &kafka.Client{Addr: kafka.TCP(b.addr), Transport: b.transport}
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: partitions, ReplicationFactor: -1}},
	})
	if err != nil {
		return fmt.Errorf("broker: create topic %s: %w", name, err)
	}
	if err := resp.Errors[name]; err != nil {
		return fmt.Errorf("broker: create topic %s: %w", name, err)
	}
	return nil
}

// Close stops the broker and drops all data. It is safe to call more than
// once.
func (b *Broker) Close() {
	b.c.Close()
	if t, ok := b.transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
}
