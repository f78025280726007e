package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// ErrBrokersUnreachable means no bootstrap broker accepted a connection.
var ErrBrokersUnreachable = errors.New("no Kafka broker reachable")

// CheckBrokers dials each bootstrap broker in turn until one answers a
// metadata request, so a wrong address fails at start with a clear error
// instead of kafka-go retrying silently inside Fetch forever. Pass
// Security.Dialer() for a secured cluster: a wrong password or an unknown
// certificate authority then fails here, with a hint at the setting to fix.
func CheckBrokers(ctx context.Context, brokers []string, dialer *kafka.Dialer, timeout time.Duration) error {
	if dialer == nil {
		dialer = kafka.DefaultDialer
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var errs []error
	for _, b := range brokers {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		conn, err := dialer.DialContext(cctx, "tcp", b)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(timeout))
			_, err = conn.Brokers()
			_ = conn.Close()
		}
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", b, explainDialErr(err, dialer)))
	}
	return fmt.Errorf("%w: %w", ErrBrokersUnreachable, errors.Join(errs...))
}
