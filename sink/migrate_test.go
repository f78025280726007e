package sink

import (
	"errors"
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
	// schema_migrations, window_ranges, windows, synthetic_instructions and
	// the published_instructions view.
	got := count(t, c, "SELECT count() FROM system.tables WHERE database = ?", c.Database())
	if got != 6 {
		t.Errorf("tables in %s = %d, want 6", c.Database(), got)
	}
	if n := count(t, c, "SELECT count() FROM "+c.table("schema_migrations")+" FINAL"); n != uint64(len(names)) {
		t.Errorf("schema_migrations rows = %d, want %d", n, len(names))
	}
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
			wantErr: "schema is at version 0, this binary needs 2: run `dpinstruct migrate`",
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
				if err := c.recordMigration(testCtx(t), 3, "0003_future.sql"); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "schema is at version 3, this binary only knows 2: upgrade dpinstruct",
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
