package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestConfigCheckPrintsEffectiveConfig(t *testing.T) {
	run := startProc(t, []string{"DPINSTRUCT_INSTANCE=golden-0", "DPINSTRUCT_CLICKHOUSE_DSN=clickhouse://u:hunter2@h:9000/db"},
		"config", "check", "--config", "../../deploy/local/example.yaml")
	if code := run.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, run.output())
	}
	if strings.Contains(run.output(), "hunter2") {
		t.Error("config check printed the ClickHouse password")
	}
	golden(t, "config-check.golden", run.output())
}

func TestHelpTeachesEveryCommand(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{"broker", "produce", "run", "migrate", "make demo"}},
		{[]string{"broker", "--help"}, []string{"--listen", "--partitions", "SIGTERM"}},
		{[]string{"produce", "--help"}, []string{"--brokers", "--topic", "--file", "--key", "user_id"}},
		{[]string{"run", "--help"}, []string{"--config", "--max-windows", "DPINSTRUCT_", "Exit codes"}},
		{[]string{"migrate", "--help"}, []string{"--clickhouse", "18.16"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{"dpinstruct"}, tt.args...), " "), func(t *testing.T) {
			run := startProc(t, nil, tt.args...)
			if code := run.wait(30 * time.Second); code != 0 {
				t.Fatalf("exit %d:\n%s", code, run.output())
			}
			for _, w := range tt.want {
				if !strings.Contains(run.output(), w) {
					t.Errorf("help lacks %q", w)
				}
			}
		})
	}
}
