package sink

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"comments only", "-- a\n  -- b;\n", nil},
		{"one without semicolon", "SELECT 1", []string{"SELECT 1"}},
		{"two", "CREATE TABLE a (x Int32)\nENGINE = Memory;\n-- c\nSELECT 2;\n", []string{"CREATE TABLE a (x Int32)\nENGINE = Memory", "SELECT 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := splitStatements(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("splitStatements(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestMigrationsGolden pins the embedded migration list and statement count:
// editing an applied migration instead of adding a new one is a bug.
func TestMigrationsGolden(t *testing.T) {
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s statements=%d\n", m.Name, len(m.Statements))
	}
	want, err := os.ReadFile("testdata/migrations.golden")
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("migrations changed:\n got: %s\nwant: %s", b.String(), want)
	}
	if SchemaVersion() != uint32(len(ms)) {
		t.Errorf("SchemaVersion() = %d, want %d", SchemaVersion(), len(ms))
	}
}

func TestParseServerVersion(t *testing.T) {
	tests := []struct {
		in           string
		major, minor int
		token        bool
	}{
		{"18.16.1", 18, 16, false},
		{"22.2.3.5", 22, 2, false},
		{"22.3.1.1", 22, 3, true},
		{"24.8.4.13", 24, 8, true},
		{"garbage", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := parseServerVersion(tt.in)
			if got.Major != tt.major || got.Minor != tt.minor || got.SupportsInsertDedupToken != tt.token || got.Version != tt.in {
				t.Errorf("parseServerVersion(%q) = %+v", tt.in, got)
			}
		})
	}
}

func TestVersionPrecedence(t *testing.T) {
	c := &Client{lastVersion: map[Status]uint64{}}
	written := c.nextVersion(StatusWritten)
	abandoned := c.nextVersion(StatusAbandoned)
	planned := c.nextVersion(StatusPlanned)
	later := c.nextVersion(StatusPlanned)
	if !(written > abandoned && abandoned > planned) {
		t.Errorf("want written > abandoned > planned, got %d %d %d", written, abandoned, planned)
	}
	if later <= planned {
		t.Errorf("renewal version %d not after %d", later, planned)
	}
}

func TestConfigErrorsHidePassword(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"bad port", Config{DSN: "clickhouse://u:s3cretpw@127.0.0.1:notaport/db"}},
		{"bad database", Config{DSN: "clickhouse://u:s3cretpw@127.0.0.1:9000/db", Database: "x; DROP"}},
		{"http", Config{DSN: "http://u:s3cretpw@127.0.0.1:8123/db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := tt.cfg.withDefaults().options()
			if err == nil {
				t.Fatal("want error")
			}
			if strings.Contains(err.Error(), "s3cretpw") {
				t.Errorf("error leaks password: %v", err)
			}
		})
	}
}

func TestRedactKeepsChain(t *testing.T) {
	base := errors.New("dial clickhouse://u:pw123@h:1 failed")
	err := redactor{"pw123"}.err(classify(base))
	if strings.Contains(err.Error(), "pw123") || !errors.Is(err, base) {
		t.Errorf("redacted error = %v (is base: %v)", err, errors.Is(err, base))
	}
}
