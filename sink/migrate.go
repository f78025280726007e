package sink

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one embedded DDL file, NNNN_name.sql.
type migration struct {
	Version    uint32
	Name       string // file name
	Statements []string
}

// loadMigrations parses the embedded files once per call; they are tiny.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sink: read embedded migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".sql" {
			continue
		}
		prefix, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseUint(prefix, 10, 32)
		if !ok || err != nil || v == 0 {
			return nil, fmt.Errorf("sink: migration %s: name must be NNNN_description.sql", name)
		}
		body, err := migrationFS.ReadFile("migrations/" + name)
		if err != nil {
			return nil, fmt.Errorf("sink: read migration %s: %w", name, err)
		}
		out = append(out, migration{Version: uint32(v), Name: name, Statements: splitStatements(string(body))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := range out {
		// Versions must be 1..N without gaps so "schema version" is a single
		// number that CheckSchema can compare.
		if out[i].Version != uint32(i+1) {
			return nil, fmt.Errorf("sink: migration %s: expected version %d", out[i].Name, i+1)
		}
	}
	return out, nil
}

// splitStatements splits on ';' at end of line and drops '--' comment lines,
// which keeps statements free of anything an old parser might reject.
func splitStatements(sql string) []string {
	var stmts []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
	}
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		if before, ok := strings.CutSuffix(trimmed, ";"); ok {
			cur.WriteString(before)
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return stmts
}

// MigrationNames lists the embedded migrations in order (e.g. for a CLI).
func MigrationNames() ([]string, error) {
	ms, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return names, nil
}

// SchemaVersion is the schema version this binary needs.
func SchemaVersion() uint32 {
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

func (c *Client) render(stmt string) string {
	return strings.ReplaceAll(stmt, "{db}", "`"+c.db+"`")
}

// ddlRenderer returns the function that renders a migration statement for
// the configured deployment: render alone on a single server (one
// statement), renderCluster in cluster mode (one or more). ms are the
// embedded migrations, where cluster mode finds each table's sharding key,
// once for every statement the function renders.
func (c *Client) ddlRenderer(ms []migration) (func(stmt string) ([]string, error), error) {
	if c.cfg.Cluster == "" {
		return func(stmt string) ([]string, error) { return []string{c.render(stmt)}, nil }, nil
	}
	all := []string{c.render(schemaMigrationsDDL)}
	for _, m := range ms {
		for _, s := range m.Statements {
			all = append(all, c.render(s))
		}
	}
	keys, err := shardingKeys(all, c.db)
	if err != nil {
		return nil, err
	}
	return func(stmt string) ([]string, error) {
		return renderCluster(c.render(stmt), c.db, c.cfg.Cluster, keys)
	}, nil
}

// createDatabaseDDL creates the sink database, on every host of the cluster
// in cluster mode.
func (c *Client) createDatabaseDDL() string {
	q := "CREATE DATABASE IF NOT EXISTS `" + c.db + "`"
	if c.cfg.Cluster != "" {
		q += onCluster(c.cfg.Cluster)
	}
	return q
}

// Migrate creates the database if needed and applies pending migrations,
// returning the names of those it applied (empty when up to date). DDL uses
// IF NOT EXISTS, and an ALTER TABLE ... ADD COLUMN that finds its column
// already there counts as done (columnExists), so a migration interrupted
// half-way is simply re-run. Concurrent Migrate calls are safe for the same
// reason.
func (c *Client) Migrate(ctx context.Context) ([]string, error) {
	ms, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	if err := c.exec(ctx, "migrate: create database", c.createDatabaseDDL()); err != nil {
		return nil, err
	}
	renderDDL, err := c.ddlRenderer(ms)
	if err != nil {
		return nil, fmt.Errorf("sink: migrate: %w", err)
	}
	ddl, err := renderDDL(schemaMigrationsDDL)
	if err != nil {
		return nil, fmt.Errorf("sink: migrate: create schema_migrations: %w", err)
	}
	for _, q := range ddl {
		if err := c.exec(ctx, "migrate: create schema_migrations", q); err != nil {
			return nil, err
		}
	}
	applied, err := c.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		if err := c.apply(ctx, m, renderDDL); err != nil {
			return done, err
		}
		// Recorded only after every statement succeeded; replays collapse in
		// the ReplacingMergeTree.
		if err := c.recordMigration(ctx, m.Version, m.Name); err != nil {
			return done, err
		}
		done = append(done, m.Name)
	}
	return done, nil
}

// apply runs every statement of m, rendered by renderDDL.
func (c *Client) apply(ctx context.Context, m migration, renderDDL func(stmt string) ([]string, error)) error {
	for i, stmt := range m.Statements {
		what := fmt.Sprintf("migrate: %s statement %d", m.Name, i+1)
		ddl, err := renderDDL(stmt)
		if err != nil {
			return fmt.Errorf("sink: %s: %w", what, err)
		}
		for _, q := range ddl {
			if err := c.exec(ctx, what, q); err != nil && !columnExists(q, err) {
				return err
			}
		}
	}
	return nil
}

// addColumnRe matches an ALTER TABLE that adds columns.
var addColumnRe = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s.*\bADD\s+COLUMN\b`)

// columnExists reports whether err is stmt, an ALTER TABLE ... ADD COLUMN,
// finding a column it adds already there: a re-run of a migration that got
// that far (ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS). One ALTER
// changes a table's columns at once, so a migration adds all of its columns
// in one statement and the error then means all of them exist. 18.16 reports
// ILLEGAL_COLUMN, later releases DUPLICATE_COLUMN; ON CLUSTER passes the
// hosts' code on.
func columnExists(stmt string, err error) bool {
	code, ok := exceptionCode(err)
	return ok && (code == codeIllegalColumn || code == codeDuplicateColumn) &&
		addColumnRe.MatchString(stmt) && strings.Contains(err.Error(), "already exists")
}

// recordMigration marks a migration applied. It uses a batch insert: on
// ClickHouse 18.16 an Exec of "INSERT ... VALUES" over the native protocol
// never completes with clickhouse-go.
func (c *Client) recordMigration(ctx context.Context, version uint32, name string) error {
	return c.insert(ctx, "migrate: record "+name, "schema_migrations", []string{"version", "name"}, "",
		func(b driver.Batch) error { return b.Append(version, name) })
}

const schemaMigrationsDDL = `CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree
ORDER BY version`

// appliedVersions reads schema_migrations. A missing database or table means
// nothing is applied.
func (c *Client) appliedVersions(ctx context.Context) (map[uint32]bool, error) {
	applied := map[uint32]bool{}
	err := c.retry(ctx, "read schema_migrations", func(ctx context.Context) error {
		clear(applied)
		rows, err := c.conn.Query(ctx, "SELECT DISTINCT version FROM "+c.table("schema_migrations"))
		if err != nil {
			if code, ok := exceptionCode(err); ok && (code == codeUnknownTable || code == codeUnknownDatabase) {
				return nil
			}
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v uint32
			if err := rows.Scan(&v); err != nil {
				return err
			}
			applied[v] = true
		}
		return rows.Err()
	})
	return applied, err
}

// CheckSchema returns nil when the database holds exactly the migrations this
// binary embeds, and an error wrapping ErrSchemaMismatch otherwise.
func (c *Client) CheckSchema(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	want := uint32(len(ms))
	applied, err := c.appliedVersions(ctx)
	if err != nil {
		return err
	}
	var have uint32
	for v := range applied {
		have = max(have, v)
	}
	var missing []string
	for _, m := range ms {
		if !applied[m.Version] {
			missing = append(missing, m.Name)
		}
	}
	switch {
	case have > want:
		return fmt.Errorf("sink: database %s on %s: %w: schema is at version %d, this binary only knows %d: upgrade dpinstruct",
			c.db, c.addr, ErrSchemaMismatch, have, want)
	case have < want:
		return fmt.Errorf("sink: database %s on %s: %w: schema is at version %d, this binary needs %d: run `dpinstruct migrate`",
			c.db, c.addr, ErrSchemaMismatch, have, want)
	case len(missing) > 0:
		return fmt.Errorf("sink: database %s on %s: %w: schema is at version %d but lacks %s: run `dpinstruct migrate`",
			c.db, c.addr, ErrSchemaMismatch, have, strings.Join(missing, ", "))
	}
	return nil
}

// exec runs one statement with retries.
func (c *Client) exec(ctx context.Context, what, query string, args ...any) error {
	return c.retry(ctx, what, func(ctx context.Context) error {
		return c.conn.Exec(ctx, query, args...)
	})
}
