package sink

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestMigrateTwiceIsNoop(t *testing.T) {
	t.Parallel()
	c := newTestDB(t, false)
	ctx := testCtx(t)

	first, err := c.Migrate(ctx)
	if err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	names, _ := MigrationNames()
	if !reflect.DeepEqual(first, names) {
		t.Errorf("first migrate applied %v, want %v", first, names)
	}
	second, err := c.Migrate(ctx)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if len(second) != 0 {
		t.Errorf("second migrate applied %v, want nothing", second)
	}
	if err := c.CheckSchema(ctx); err != nil {
		t.Errorf("CheckSchema after migrate: %v", err)
	}
	// schema_migrations plus every table and view the migrations create.
	got := count(t, c, "SELECT count() FROM system.tables WHERE database = ?", c.Database())
	if want := wantTablesIn(c); got != want {
		t.Errorf("tables in %s = %d, want %d", c.Database(), got, want)
	}
	if n := count(t, c, "SELECT count() FROM "+c.table("schema_migrations")+" FINAL"); n != uint64(len(names)) {
		t.Errorf("schema_migrations rows = %d, want %d", n, len(names))
	}
}

// wantTables: schema_migrations; window_ranges, windows,
// synthetic_instructions, published_instructions (0001); privacy_ledger
// (0002); annotation_queue, annotation_events, annotations and the views
// synthetic_per_window, cluster_sizes, annotation_progress (0003);
// output_deliveries (0004).
const (
	wantTables = 13
	wantViews  = 4
)

// wantTablesIn is how many entries the migrated database of c has in
// system.tables: in cluster mode every table has a _local twin.
func wantTablesIn(c *Client) uint64 {
	if c.cfg.Cluster != "" {
		return 2*wantTables - wantViews
	}
	return wantTables
}

func TestCheckSchema(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(t *testing.T, c *Client)
		wantErr string // empty: no error
	}{
		{
			name:    "database missing",
			setup:   func(t *testing.T, c *Client) {},
			wantErr: fmt.Sprintf("schema is at version 0, this binary needs %d: run `dpinstruct migrate`", SchemaVersion()),
		},
		{
			name: "up to date",
			setup: func(t *testing.T, c *Client) {
				t.Helper()
				if _, err := c.Migrate(testCtx(t)); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "database newer than binary",
			setup: func(t *testing.T, c *Client) {
				t.Helper()
				if _, err := c.Migrate(testCtx(t)); err != nil {
					t.Fatal(err)
				}
				if err := c.recordMigration(testCtx(t), SchemaVersion()+1, "9999_future.sql"); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: fmt.Sprintf("schema is at version %d, this binary only knows %d: upgrade dpinstruct", SchemaVersion()+1, SchemaVersion()),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newTestDB(t, false)
			tt.setup(t, c)
			err := c.CheckSchema(testCtx(t))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckSchema: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrSchemaMismatch) {
				t.Fatalf("CheckSchema = %v, want ErrSchemaMismatch", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("CheckSchema = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestMigrationAddingColumnsReruns: a migration that adds columns
// (0005) can run again on a database that already has them, as Migrate
// does after an interruption before the migration was recorded.
func TestMigrationAddingColumnsReruns(t *testing.T) {
	t.Parallel()
	c := newTestDB(t, true)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	renderDDL, err := c.ddlRenderer(ms)
	if err != nil {
		t.Fatal(err)
	}
	m := ms[4]
	if !strings.HasPrefix(m.Name, "0005_") || !addColumnRe.MatchString(m.Statements[0]) {
		t.Fatalf("migration %s is not the one adding columns", m.Name)
	}
	if err := c.apply(testCtx(t), m, renderDDL); err != nil {
		t.Fatalf("re-running %s: %v", m.Name, err)
	}
	got := count(t, c, "SELECT count() FROM system.columns WHERE database = ? AND table = 'privacy_ledger' AND name LIKE 'range_%'", c.Database())
	if got != 4 {
		t.Errorf("privacy_ledger has %d range columns, want 4", got)
	}
}
