package sink

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Client is a ClickHouse sink. It is safe for concurrent use.
type Client struct {
	conn   driver.Conn
	cfg    Config
	db     string // plain identifier, validated
	addr   string // host:port list for error messages
	red    redactor
	server ServerInfo

	mu          sync.Mutex
	lastVersion map[Status]uint64 // keeps versions strictly increasing per client
}

// ServerInfo describes the connected ClickHouse server.
type ServerInfo struct {
	Version      string // as reported by SELECT version(), e.g. "18.16.1"
	Major, Minor int
	// SupportsInsertDedupToken: the insert_deduplication_token setting is
	// known to the server (22.3+; it appeared around 22.2, we stay
	// conservative). Idempotency never depends on it.
	SupportsInsertDedupToken bool
}

// Open connects to ClickHouse, pings it (retrying transient failures) and
// detects the server version. It does not touch the schema; see Migrate and
// CheckSchema.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	opt, db, red, err := cfg.options()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:         cfg,
		db:          db,
		addr:        strings.Join(opt.Addr, ","),
		red:         red,
		lastVersion: map[Status]uint64{},
	}
	conn, err := clickhouse.Open(opt)
	if err != nil {
		return nil, fmt.Errorf("sink: open %s: %w", c.addr, red.err(classify(err)))
	}
	c.conn = conn
	if err := c.retry(ctx, "open: ping", c.ping); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if err := c.retry(ctx, "open: detect server version", c.detectVersion); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if cfg.Cluster != "" {
		if err := c.checkCluster(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) ping(ctx context.Context) error { return c.conn.Ping(ctx) }

func (c *Client) detectVersion(ctx context.Context) error {
	var v string
	if err := c.conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return err
	}
	c.server = parseServerVersion(v)
	return nil
}

func parseServerVersion(v string) ServerInfo {
	si := ServerInfo{Version: v}
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		si.Major, _ = strconv.Atoi(parts[0])
		si.Minor, _ = strconv.Atoi(parts[1])
	}
	si.SupportsInsertDedupToken = si.Major > 22 || (si.Major == 22 && si.Minor >= 3)
	return si
}

// Server returns what Open learned about the server.
func (c *Client) Server() ServerInfo { return c.server }

// Database returns the database the client works in.
func (c *Client) Database() string { return c.db }

// Ping checks the server is reachable and accepts our credentials.
func (c *Client) Ping(ctx context.Context) error {
	return c.retry(ctx, "ping", c.ping)
}

// Conn exposes the underlying driver connection (benchmarks, ad-hoc queries).
// Table names must be qualified with Database(): the connection has no
// default database of its own.
func (c *Client) Conn() driver.Conn { return c.conn }

// Close releases the connection pool.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("sink: close %s: %w", c.addr, c.red.err(err))
	}
	return nil
}

// table returns the qualified, quoted name of a table in the sink database.
func (c *Client) table(name string) string {
	return "`" + c.db + "`.`" + name + "`"
}

// nextVersion returns rank<<48 | unix millis, strictly increasing per status
// within this client so two updates in the same millisecond stay ordered.
func (c *Client) nextVersion(s Status) uint64 {
	v := uint64(s.rank())<<48 | uint64(time.Now().UnixMilli())&(1<<48-1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if last := c.lastVersion[s]; v <= last {
		v = last + 1
	}
	c.lastVersion[s] = v
	return v
}
