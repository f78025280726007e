package stream

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestCheckBrokers(t *testing.T) {
	addr := startBroker(t, 1)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	ctx := context.Background()
	if err := CheckBrokers(ctx, []string{closed, addr}, nil, time.Second); err != nil {
		t.Errorf("one reachable broker should do: %v", err)
	}
	err = CheckBrokers(ctx, []string{closed}, nil, time.Second)
	if !errors.Is(err, ErrBrokersUnreachable) || !strings.Contains(err.Error(), closed) {
		t.Errorf("want ErrBrokersUnreachable naming %s, got %v", closed, err)
	}
}
