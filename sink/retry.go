package sink

import (
	"context"
	"errors"
	"fmt"

	"github.com/cenkalti/backoff/v5"
)

// retry runs op until it succeeds, fails permanently, runs out of attempts or
// ctx ends. op must be safe to repeat: every write in this package is
// idempotent by construction (same rows, same versions on every attempt).
func (c *Client) retry(ctx context.Context, what string, op func(ctx context.Context) error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = c.cfg.InitialBackoff
	b.MaxInterval = c.cfg.MaxBackoff
	b.RandomizationFactor = 0.5
	b.Multiplier = 2

	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := op(ctx)
		if err == nil {
			return struct{}{}, nil
		}
		last = err
		if !isTransient(err) || ctx.Err() != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	},
		backoff.WithBackOff(b),
		backoff.WithMaxTries(uint(c.cfg.MaxAttempts)),
		backoff.WithMaxElapsedTime(0),
	)
	if err == nil {
		return nil
	}
	// backoff returns the bare context error when ctx ends while waiting;
	// keep the last real failure visible too.
	if last != nil && !errors.Is(err, last) {
		err = fmt.Errorf("%w (last error: %w)", err, last)
	}
	return fmt.Errorf("sink: %s on %s: %w", what, c.addr, c.red.err(classify(err)))
}
