package sink

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Cluster mode (Config.Cluster set) renders the same embedded migrations as
// distributed DDL, for any number of shards and replicas:
//
//   - every table T becomes two: T_local, a Replicated* table holding one
//     shard's rows (ZooKeeper path /clickhouse/tables/{shard}/<db>/T_local,
//     the {shard} and {replica} macros expanded by each server, so the
//     replicas of a shard share it), and T itself, a Distributed table over
//     the T_local of every shard. Everything the sink and analysts read and
//     write goes through T, so queries are the same as on one server;
//   - the sharding key is cityHash64 of T's sorting key: rows that a
//     ReplacingMergeTree collapses (same sorting key, several versions)
//     always land on the same shard, so FINAL and argMax-by-version reads
//     stay correct across shards;
//   - views stay views over the Distributed tables; their IN subqueries
//     become GLOBAL IN (ClickHouse refuses a distributed subquery inside a
//     distributed query otherwise);
//   - CREATE and ALTER run ON CLUSTER, through the servers' distributed_ddl
//     queue in ZooKeeper, so every host gets them. An ALTER changes T_local
//     and then re-creates T (a Distributed table holds no rows of its own
//     when inserts are synchronous, see below), because ClickHouse will not
//     run ALTER ON CLUSTER on a Distributed table whose shards replicate.
//
// The sink's session settings in cluster mode (clusterSettings) make this
// behave like one server: inserts through T return only once every shard
// has its rows (insert_distributed_sync), and a server never prefers its own
// replica of a shard (prefer_localhost_replica=0). With several replicas per
// shard, the connector's user must also have load_balancing=in_order (in its
// settings profile; on ClickHouse 19.x+ also ?load_balancing=in_order in the
// DSN), which Open checks: reads and inserts then use the replicas of each
// shard in configuration order, so a row one process wrote is visible to
// the next process that reads, whichever server each is connected to, as
// long as the first replica of each shard is up. (clickhouse-go cannot send
// a string setting to an 18.16 server, hence the profile.) When the first
// replica is down, reads go to the next one, which may lag by ClickHouse's
// replication delay: the window ledger's settle wait (plan_settle) and the
// claim settle wait are the margin for that, as they are for clock skew
// between servers (DEFAULT now() columns are stamped by the server that
// takes the insert).
//
// Replicated tables deduplicate inserted blocks (insert_deduplicate, on by
// default): a retried batch with the same rows in the same order, sent
// through any server, is split into the same per-shard blocks and stored
// once.
//
// Resharding (adding a shard later) changes where a sorting key lands, so
// new versions of an existing row could go to another shard than the old
// ones: the sink does not reshard, and a cluster should keep its shard count
// for the life of a database (or be migrated into a new one).

// localSuffix names the per-shard table behind each Distributed table.
const localSuffix = "_local"

// clusterZKPathPrefix is where replicated tables live in ZooKeeper; the
// database and local table names follow it.
const clusterZKPathPrefix = "/clickhouse/tables/{shard}/"

var (
	// clusterHeadRe matches the statement kinds that can run ON CLUSTER; the
	// clause goes right after the (rendered, quoted) qualified name.
	clusterHeadRe = regexp.MustCompile("^(?s)((CREATE\\s+(TABLE|VIEW|MATERIALIZED\\s+VIEW)(?:\\s+IF\\s+NOT\\s+EXISTS)?|ALTER\\s+TABLE)\\s+)`([A-Za-z_][A-Za-z0-9_]*)`\\.`?([A-Za-z_][A-Za-z0-9_]*)`?(\\s.*)?$")
	// clusterEngineRe matches a MergeTree-family engine and its optional
	// argument list (new-style syntax: parameters only, keys in clauses).
	clusterEngineRe = regexp.MustCompile(`ENGINE\s*=\s*([A-Za-z]*MergeTree)\b(?:\s*\(([^()]*)\))?`)
	// anyEngineRe detects an ENGINE clause of any kind.
	anyEngineRe = regexp.MustCompile(`ENGINE\s*=`)
	// orderByRe finds a table's sorting key: a parenthesised list without
	// nested parentheses, or one bare expression.
	orderByRe = regexp.MustCompile(`(?s)\bORDER\s+BY\s+(\([^()]*\)|[^\s()]+)`)
	// subqueryInRe matches an IN or NOT IN whose operand is a subquery.
	subqueryInRe = regexp.MustCompile(`(?i)\b((?:NOT\s+)?IN\s*\(\s*SELECT\b)`)
)

// onCluster is the ON CLUSTER clause for cluster (a validated identifier).
func onCluster(cluster string) string {
	return " ON CLUSTER `" + cluster + "`"
}

// clusterSettings are the session settings of cluster mode (see above).
// Settings the DSN already sets are left as the user chose them.
var clusterSettings = clickhouse.Settings{
	"insert_distributed_sync":  1,
	"prefer_localhost_replica": 0,
}

// shardingKeys maps each table created by stmts (rendered, single-server
// form) to its Distributed sharding key, cityHash64 of its sorting key, so
// that an ALTER in a later migration can re-create the Distributed table
// with the key its CREATE had.
func shardingKeys(stmts []string, db string) (map[string]string, error) {
	keys := map[string]string{}
	for _, stmt := range stmts {
		m := clusterHeadRe.FindStringSubmatch(stmt)
		if m == nil || m[3] != "TABLE" || m[4] != db {
			continue
		}
		table, rest := m[5], m[6]
		o := orderByRe.FindStringSubmatch(rest)
		if o == nil {
			return nil, fmt.Errorf("cluster mode: table %s.%s has no ORDER BY to shard by", db, table)
		}
		key := strings.TrimSpace(o[1])
		if strings.HasPrefix(key, "(") {
			key = strings.TrimSpace(key[1 : len(key)-1])
		}
		keys[table] = "cityHash64(" + key + ")"
	}
	return keys, nil
}

// renderCluster turns a rendered single-server statement into its cluster
// form (see above): one or more statements to run in order. db and cluster
// are validated identifiers; keys comes from shardingKeys over every
// migration. Statements it does not know how to distribute are an error
// rather than silently run on one host only.
func renderCluster(stmt, db, cluster string, keys map[string]string) ([]string, error) {
	m := clusterHeadRe.FindStringSubmatch(stmt)
	if m == nil || m[4] != db {
		return nil, fmt.Errorf("cluster mode: cannot run statement on cluster %s: only CREATE TABLE/VIEW and ALTER TABLE on the sink database are supported: %.60q", cluster, stmt)
	}
	verb, kind, table, rest := m[1], m[3], m[5], m[6]
	name := func(t string) string { return "`" + db + "`.`" + t + "`" }
	distributed := func(ifNotExists string) (string, error) {
		key, ok := keys[table]
		if !ok {
			return "", fmt.Errorf("cluster mode: no sharding key known for table %s.%s", db, table)
		}
		return "CREATE TABLE " + ifNotExists + name(table) + onCluster(cluster) + " AS " + name(table+localSuffix) +
			"\nENGINE = Distributed(`" + cluster + "`, `" + db + "`, `" + table + localSuffix + "`, " + key + ")", nil
	}
	switch {
	case strings.HasPrefix(verb, "ALTER"):
		// IF NOT EXISTS: replicas migrating at once each drop and re-create
		// T; whichever creates it last finds it there. Every create runs
		// after its own ALTER finished on every host, so any of them copies
		// the altered T_local.
		dist, err := distributed("IF NOT EXISTS ")
		if err != nil {
			return nil, err
		}
		return []string{
			verb + name(table+localSuffix) + onCluster(cluster) + rest,
			"DROP TABLE IF EXISTS " + name(table) + onCluster(cluster),
			dist,
		}, nil
	case kind != "TABLE":
		if anyEngineRe.MatchString(rest) {
			return nil, fmt.Errorf("cluster mode: %s %s.%s with an ENGINE clause is not supported", strings.ToLower(kind), db, table)
		}
		return []string{verb + name(table) + onCluster(cluster) + subqueryInRe.ReplaceAllString(rest, "GLOBAL $1")}, nil
	case !anyEngineRe.MatchString(rest):
		return nil, fmt.Errorf("cluster mode: table %s.%s has no ENGINE clause", db, table)
	}
	loc := clusterEngineRe.FindStringSubmatchIndex(rest)
	if loc == nil {
		return nil, fmt.Errorf("cluster mode: table %s.%s: only MergeTree-family engines can be replicated", db, table)
	}
	engine := rest[loc[2]:loc[3]]
	if strings.HasPrefix(engine, "Replicated") {
		return nil, fmt.Errorf("cluster mode: table %s.%s: write migrations with plain MergeTree engines; cluster mode makes them replicated", db, table)
	}
	params := "'" + clusterZKPathPrefix + db + "/" + table + localSuffix + "', '{replica}'"
	if loc[4] >= 0 {
		if args := strings.TrimSpace(rest[loc[4]:loc[5]]); args != "" {
			params += ", " + args
		}
	}
	local := verb + name(table+localSuffix) + onCluster(cluster) +
		rest[:loc[0]] + "ENGINE = Replicated" + engine + "(" + params + ")" + rest[loc[1]:]
	ifNotExists := ""
	if strings.Contains(verb, "NOT EXISTS") {
		ifNotExists = "IF NOT EXISTS "
	}
	dist, err := distributed(ifNotExists)
	if err != nil {
		return nil, err
	}
	return []string{local, dist}, nil
}

// checkCluster makes sure the configured cluster exists on the server the
// client talks to and, when a shard has several replicas, that the session
// reads replicas in order (see above).
func (c *Client) checkCluster(ctx context.Context) error {
	var hosts, replicas uint64
	var balancing string
	err := c.retry(ctx, "open: look up cluster "+c.cfg.Cluster, func(ctx context.Context) error {
		if err := c.conn.QueryRow(ctx, "SELECT count(), toUInt64(max(replica_num)) FROM system.clusters WHERE cluster = ?",
			c.cfg.Cluster).Scan(&hosts, &replicas); err != nil {
			return err
		}
		return c.conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'load_balancing'").Scan(&balancing)
	})
	switch {
	case err != nil:
		return err
	case hosts == 0:
		return fmt.Errorf("sink: cluster %q is not defined on %s (no rows in system.clusters; see <remote_servers> in the server config)",
			c.cfg.Cluster, c.addr)
	case replicas > 1 && balancing != "in_order":
		return fmt.Errorf("sink: cluster %q on %s has shards with %d replicas, and the session's load_balancing is %q: "+
			"set load_balancing to in_order in the settings profile of the connector's ClickHouse user "+
			"(or add ?load_balancing=in_order to the DSN on ClickHouse 19.x+), so that what one dpinstruct process writes the next one reads",
			c.cfg.Cluster, c.addr, replicas, balancing)
	}
	return nil
}
