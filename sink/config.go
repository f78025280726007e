package sink

import (
	"crypto/tls"
	"fmt"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Config configures a Client. The zero value of every field except DSN is
// valid and replaced by a default.
type Config struct {
	// DSN is clickhouse://user:pass@host:port/db?opt=... (native protocol).
	DSN string
	// Database overrides the database named in the DSN path. If both are
	// empty, "default" is used.
	Database string
	// MaxAttempts bounds tries (first attempt included) for retriable
	// operations. Default 5.
	MaxAttempts int
	// InitialBackoff and MaxBackoff shape the jittered exponential backoff
	// between attempts. Defaults 100ms and 5s.
	InitialBackoff, MaxBackoff time.Duration
	// DialTimeout bounds connecting (and waiting for a pooled connection).
	// Default 5s.
	DialTimeout time.Duration
	// Cluster, when set, names a cluster from the servers' <remote_servers>
	// (any number of shards and replicas) and switches the sink to cluster
	// mode: Migrate runs every CREATE ON CLUSTER, each table becomes a
	// Replicated* table per shard (T_local, ZooKeeper path
	// /clickhouse/tables/{shard}/<database>/T_local) behind a Distributed
	// table T sharded by its sorting key, and the sink's sessions insert
	// synchronously into every shard and prefer replicas in configuration
	// order, so what one process writes the next one reads (see cluster.go
	// for the trade-offs). The servers need ZooKeeper and the {shard} and
	// {replica} macros. Empty (the default): plain, single-server DDL.
	//
	// Delivery: retried inserts are stored once (replicated block dedup),
	// and nothing the connector commits depends on replication having
	// caught up, as long as the first replica of each shard is up.
	Cluster string
	// TLS, when set, encrypts connections with this configuration and
	// replaces whatever TLS the DSN asks for (?secure=true,
	// &skip_verify=true): a private CA or a client certificate.
	TLS *tls.Config
}

const (
	defaultMaxAttempts    = 5
	defaultInitialBackoff = 100 * time.Millisecond
	defaultMaxBackoff     = 5 * time.Second
	defaultDialTimeout    = 5 * time.Second
	defaultDatabase       = "default"
)

// identRe restricts database names to plain identifiers: they are spliced
// into DDL, and ClickHouse 18.16 has no server-side parameters to bind them.
var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c Config) withDefaults() Config {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = defaultMaxAttempts
	}
	if c.InitialBackoff <= 0 {
		c.InitialBackoff = defaultInitialBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = defaultMaxBackoff
	}
	if c.MaxBackoff < c.InitialBackoff {
		c.MaxBackoff = c.InitialBackoff
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = defaultDialTimeout
	}
	return c
}

// options turns the config into clickhouse-go options plus the database the
// sink works in and a redactor for the password. The connection itself is
// opened without a database: the target database may not exist before
// Migrate, and every statement qualifies table names explicitly.
func (c Config) options() (*clickhouse.Options, string, redactor, error) {
	if c.DSN == "" {
		return nil, "", nil, fmt.Errorf("sink: config: DSN is empty")
	}
	opt, err := clickhouse.ParseDSN(c.DSN)
	if err != nil {
		// The parse error may echo the DSN, password included.
		return nil, "", nil, fmt.Errorf("sink: config: invalid DSN: %w", redactErr(err, dsnPassword(c.DSN)))
	}
	red := redactor{opt.Auth.Password}
	if opt.Protocol != clickhouse.Native {
		return nil, "", red, fmt.Errorf("sink: config: only the native protocol (clickhouse://) is supported")
	}
	db := c.Database
	if db == "" {
		db = opt.Auth.Database
	}
	if db == "" {
		db = defaultDatabase
	}
	if !identRe.MatchString(db) {
		return nil, "", red, fmt.Errorf("sink: config: database name %q is not a plain identifier", db)
	}
	if c.Cluster != "" && !identRe.MatchString(c.Cluster) {
		return nil, "", red, fmt.Errorf("sink: config: cluster name %q is not a plain identifier", c.Cluster)
	}
	if c.Cluster != "" {
		if opt.Settings == nil {
			opt.Settings = clickhouse.Settings{}
		}
		for k, v := range clusterSettings {
			if _, set := opt.Settings[k]; !set {
				opt.Settings[k] = v
			}
		}
	}
	if c.TLS != nil {
		opt.TLS = c.TLS.Clone()
	}
	opt.Auth.Database = ""
	opt.DialTimeout = c.DialTimeout
	if len(opt.Addr) == 0 {
		opt.Addr = []string{"127.0.0.1:9000"}
	}
	return opt, db, red, nil
}
