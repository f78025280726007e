package sink

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestServerInfo(t *testing.T) {
	t.Parallel()
	c := newTestDB(t, false)
	si := c.Server()
	if si.Version == "" || si.Major == 0 {
		t.Errorf("Server() = %+v", si)
	}
	if err := c.Ping(testCtx(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
	t.Logf("server %+v", si)
}

// closedPort returns a localhost port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host := u.Host
	withUser := func(user, pass string) string {
		v := *u
		v.User = url.UserPassword(user, pass)
		return v.String()
	}
	const secret = "n0t-the-pa55word"

	tests := []struct {
		name     string
		dsn      string
		want     error
		wantAddr string
	}{
		{"closed port", "clickhouse://default:" + secret + "@" + closedPort(t) + "/default", ErrUnreachable, ""},
		{"wrong password", withUser("default", secret), ErrAuth, host},
		{"unknown user", withUser("dpi_no_such_user", secret), ErrAuth, host},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			c, err := Open(ctx, Config{DSN: tt.dsn, MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond, DialTimeout: 2 * time.Second})
			if err == nil {
				_ = c.Close()
				t.Fatal("Open succeeded, want error")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Open error = %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrUnreachable, ErrAuth, ErrSchemaMismatch} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("Open error also matches %v: %v", other, err)
				}
			}
			wantAddr := tt.wantAddr
			if wantAddr == "" {
				// host:port of the DSN itself (the closed port).
				wantAddr = strings.Split(strings.Split(tt.dsn, "@")[1], "/")[0]
			}
			if !strings.Contains(err.Error(), wantAddr) {
				t.Errorf("error %q does not name %s", err, wantAddr)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the password: %q", err)
			}
			if time.Since(start) > 15*time.Second {
				t.Errorf("Open took %v", time.Since(start))
			}
			t.Logf("%v", err)
		})
	}
}
