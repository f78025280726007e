package connector

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clearEnv hides the caller's DPINSTRUCT_* variables (make test exports a
// DSN) so a test sees only the file and what it sets itself.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "DPINSTRUCT_") {
			t.Setenv(k, "") // restores the old value after the test
			os.Unsetenv(k)
		}
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	clearEnv(t)
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigExampleIsValidAndMatchesDefaults(t *testing.T) {
	clearEnv(t)
	t.Setenv("DPINSTRUCT_INSTANCE", "test-instance")
	got, err := LoadConfig("../deploy/local/example.yaml")
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	want := DefaultConfig()
	want.Instance = "test-instance"
	// The example documents the defaults; if they drift apart, one is wrong.
	if got.Kafka.Topic != want.Kafka.Topic || got.Window != want.Window || got.ClickHouse != want.ClickHouse ||
		got.Processor != want.Processor || got.Observability != want.Observability || got.ShutdownTimeout != want.ShutdownTimeout {
		t.Errorf("example.yaml and DefaultConfig disagree:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadConfigEnvOverrides(t *testing.T) {
	p := writeConfig(t, "kafka:\n  topic: from-file\nwindow:\n  max_records: 5\n")
	t.Setenv("DPINSTRUCT_KAFKA_TOPIC", "from-env")
	t.Setenv("DPINSTRUCT_KAFKA_BROKERS", "a:1,b:2")
	t.Setenv("DPINSTRUCT_WINDOW_MAX_DURATION", "3s")
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.Topic != "from-env" || strings.Join(cfg.Kafka.Brokers, ",") != "a:1,b:2" ||
		cfg.Window.MaxDuration != 3*time.Second || cfg.Window.MaxRecords != 5 {
		t.Errorf("overrides not applied: %+v", cfg)
	}
}

func TestLoadConfigErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, body, field string
	}{
		{"unknown field", "kafka:\n  topik: x\n", "topik"},
		{"bad format", "kafka:\n  format: xml\n", "kafka.format"},
		{"no brokers", "kafka:\n  brokers: []\n", "kafka.brokers"},
		{"broker without port", "kafka:\n  brokers: [localhost]\n", "kafka.brokers"},
		{"dlq equals topic", "kafka:\n  topic: a\n  dead_letter_topic: a\n", "kafka.dead_letter_topic"},
		{"http dsn", "clickhouse:\n  dsn: http://x:8123\n", "clickhouse.dsn"},
		{"never closes", "window:\n  max_records: 0\n  max_duration: 0s\n", "window.max_records"},
		{"settle too short", "window:\n  plan_settle: 500ms\n", "window.plan_settle"},
		{"unknown processor", "processor:\n  name: gpt\n", "processor.name"},
		{"bad log level", "observability:\n  log_level: loud\n", "observability.log_level"},
		{"bad duration", "window:\n  lease: soon\n", "window.lease"},
		{"bad type", "kafka:\n  queue_capacity: lots\n", "kafka.queue_capacity"},
		{"zero epsilon", "privacy:\n  epsilon: 0\n", "privacy.epsilon"},
		{"infinite epsilon", "privacy:\n  epsilon: .inf\n", "privacy.epsilon"},
		{"delta of one", "privacy:\n  delta: 1\n", "privacy.delta"},
		{"negative cap", "privacy:\n  lifetime_epsilon: -1\n", "privacy.lifetime_epsilon"},
		{"cap below one window", "privacy:\n  epsilon: 4\n  lifetime_epsilon: 2\n", "privacy.lifetime_epsilon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tt.body))
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %q", err, tt.field)
			}
		})
	}
}

func TestLoadConfigEmptyFileMeansDefaults(t *testing.T) {
	t.Setenv("DPINSTRUCT_INSTANCE", "x")
	if _, err := LoadConfig(writeConfig(t, "")); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	clearEnv(t)
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("want ErrNotExist, got %v", err)
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"clickhouse://u:secret@h:9000/db": "clickhouse://u:xxxxx@h:9000/db",
		"clickhouse://u@h:9000/db":        "clickhouse://u@h:9000/db",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
