package sink

import (
	"context"
	"fmt"
	"regexp"
	"strings"
)

// Cluster mode (Config.Cluster set) renders the same embedded migrations as
// distributed DDL:
//
//   - CREATE DATABASE, CREATE TABLE, CREATE VIEW and ALTER TABLE run
//     ON CLUSTER, so every host of the cluster gets them (through the
//     servers' distributed_ddl queue in ZooKeeper);
//   - a MergeTree-family engine X(args) becomes
//     ReplicatedX('/clickhouse/tables/{shard}/<db>/<table>', '{replica}', args),
//     the {shard} and {replica} macros being expanded by each server, so the
//     replicas of a shard share one replicated table, schema_migrations
//     included (CheckSchema sees the same migrations on every replica);
//   - views stay plain views over the local replicated tables.
//
// Replicated tables deduplicate inserted blocks (insert_deduplicate, on by
// default): a retried batch with the same rows in the same order, sent to
// any replica, is stored once, which a plain MergeTree only achieves under
// FINAL for Replacing tables.
//
// Only single-shard clusters are supported: with several shards, reads and
// writes would have to go through Distributed tables, which the sink does
// not create yet, so Migrate refuses such a cluster.

// clusterZKPathPrefix is where replicated tables live in ZooKeeper; the
// database and table names follow it.
const clusterZKPathPrefix = "/clickhouse/tables/{shard}/"

var (
	// clusterHeadRe matches the statement kinds that can run ON CLUSTER; the
	// clause goes right after the (rendered, quoted) qualified name.
	clusterHeadRe = regexp.MustCompile("^(?s)((?:CREATE\\s+(TABLE|VIEW|MATERIALIZED\\s+VIEW)(?:\\s+IF\\s+NOT\\s+EXISTS)?|ALTER\\s+TABLE)\\s+`([A-Za-z_][A-Za-z0-9_]*)`\\.`?([A-Za-z_][A-Za-z0-9_]*)`?)(\\s.*)?$")
	// clusterEngineRe matches a MergeTree-family engine and its optional
	// argument list (new-style syntax: parameters only, keys in clauses).
	clusterEngineRe = regexp.MustCompile(`ENGINE\s*=\s*([A-Za-z]*MergeTree)\b(?:\s*\(([^()]*)\))?`)
	// anyEngineRe detects an ENGINE clause of any kind.
	anyEngineRe = regexp.MustCompile(`ENGINE\s*=`)
)

// onCluster is the ON CLUSTER clause for cluster (a validated identifier).
func onCluster(cluster string) string {
	return " ON CLUSTER `" + cluster + "`"
}

// renderCluster turns a rendered single-server statement into its cluster
// form (see above). db and cluster are validated identifiers. Statements it
// does not know how to distribute are an error rather than silently run on
// one host only.
func renderCluster(stmt, db, cluster string) (string, error) {
	m := clusterHeadRe.FindStringSubmatch(stmt)
	if m == nil || m[3] != db {
		return "", fmt.Errorf("cluster mode: cannot run statement on cluster %s: only CREATE TABLE/VIEW and ALTER TABLE on the sink database are supported: %.60q", cluster, stmt)
	}
	head, kind, table, rest := m[1], m[2], m[4], m[5]
	out := head + onCluster(cluster) + rest
	if !anyEngineRe.MatchString(rest) {
		if kind == "TABLE" {
			return "", fmt.Errorf("cluster mode: table %s.%s has no ENGINE clause", db, table)
		}
		return out, nil // a view, an ALTER, or a materialized view TO a table
	}
	loc := clusterEngineRe.FindStringSubmatchIndex(out)
	if loc == nil {
		return "", fmt.Errorf("cluster mode: table %s.%s: only MergeTree-family engines can be replicated", db, table)
	}
	engine := out[loc[2]:loc[3]]
	if strings.HasPrefix(engine, "Replicated") {
		return out, nil
	}
	params := "'" + clusterZKPathPrefix + db + "/" + table + "', '{replica}'"
	if loc[4] >= 0 {
		if args := strings.TrimSpace(out[loc[4]:loc[5]]); args != "" {
			params += ", " + args
		}
	}
	return out[:loc[0]] + "ENGINE = Replicated" + engine + "(" + params + ")" + out[loc[1]:], nil
}

// checkCluster makes sure the configured cluster exists on the server Migrate
// talks to and has a single shard (see above).
func (c *Client) checkCluster(ctx context.Context) error {
	var hosts, shards uint64
	err := c.retry(ctx, "migrate: look up cluster "+c.cfg.Cluster, func(ctx context.Context) error {
		return c.conn.QueryRow(ctx, "SELECT count(), uniqExact(shard_num) FROM system.clusters WHERE cluster = ?",
			c.cfg.Cluster).Scan(&hosts, &shards)
	})
	if err != nil {
		return err
	}
	switch {
	case hosts == 0:
		return fmt.Errorf("sink: cluster %q is not defined on %s (no rows in system.clusters; see <remote_servers> in the server config)",
			c.cfg.Cluster, c.addr)
	case shards > 1:
		return fmt.Errorf("sink: cluster %q on %s has %d shards: only single-shard clusters (replicas of one shard) are supported",
			c.cfg.Cluster, c.addr, shards)
	}
	return nil
}
