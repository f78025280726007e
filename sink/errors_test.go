package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

func TestErrorClassification(t *testing.T) {
	ex := func(code int32) error { return fmt.Errorf("wrapped: %w", &proto.Exception{Code: code, Message: "m"}) }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name      string
		err       error
		transient bool
		sentinel  error
	}{
		{"too many simultaneous queries", ex(202), true, nil},
		{"socket timeout", ex(209), true, nil},
		{"network error", ex(210), true, nil},
		{"timeout exceeded", ex(159), true, nil},
		{"syntax error", ex(62), false, nil},
		{"unknown table", ex(60), false, nil},
		{"wrong password", ex(193), false, ErrAuth},
		{"unknown user", ex(192), false, ErrAuth},
		{"required password", ex(194), false, ErrAuth},
		{"authentication failed", ex(516), false, ErrAuth},
		{"connection refused", fmt.Errorf("dial: %w", refused), true, ErrUnreachable},
		{"eof", io.EOF, true, ErrUnreachable},
		{"deadline", context.DeadlineExceeded, true, nil},
		{"canceled", context.Canceled, false, nil},
		{"plain", errors.New("converting string to Int32 is unsupported"), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isTransient(tt.err); got != tt.transient {
				t.Errorf("isTransient = %v, want %v", got, tt.transient)
			}
			got := classify(tt.err)
			for _, s := range []error{ErrAuth, ErrUnreachable} {
				if want := s == tt.sentinel; errors.Is(got, s) != want {
					t.Errorf("errors.Is(classify(err), %v) = %v, want %v", s, !want, want)
				}
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("classify lost the original error")
			}
		})
	}
}
