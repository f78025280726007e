package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
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
		got.Processor != want.Processor || got.Observability != want.Observability || got.ShutdownTimeout != want.ShutdownTimeout ||
		got.Kafka.SASL != want.Kafka.SASL || got.Kafka.TLS != want.Kafka.TLS {
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
		{"negative checkpoint retention", "processor:\n  keep_checkpoints: -1\n", "processor.keep_checkpoints"},
		{"bad log level", "observability:\n  log_level: loud\n", "observability.log_level"},
		{"bad duration", "window:\n  lease: soon\n", "window.lease"},
		{"bad type", "kafka:\n  queue_capacity: lots\n", "kafka.queue_capacity"},
		{"zero epsilon", "privacy:\n  epsilon: 0\n", "privacy.epsilon"},
		{"infinite epsilon", "privacy:\n  epsilon: .inf\n", "privacy.epsilon"},
		{"delta of one", "privacy:\n  delta: 1\n", "privacy.delta"},
		{"negative cap", "privacy:\n  lifetime_epsilon: -1\n", "privacy.lifetime_epsilon"},
		{"cap below one window", "privacy:\n  epsilon: 4\n  lifetime_epsilon: 2\n", "privacy.lifetime_epsilon"},
		{"unknown accountant", "privacy:\n  accountant: moments\n", "privacy.accountant"},
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

// writeSecret writes content to a 0600 file in a temp dir.
func writeSecret(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigSecurityFields(t *testing.T) {
	const pw = "s3cr3t-Pa55word"
	pwFile := writeSecret(t, "pw", pw+"\n")
	emptyFile := writeSecret(t, "empty", "\n")
	caFile := writeSecret(t, "ca.pem", "not a certificate")
	missing := filepath.Join(t.TempDir(), "missing")
	httpDSN := writeSecret(t, "dsn", "http://u:"+pw+"@h:8123/db\n")
	goodDSN := writeSecret(t, "dsn", "clickhouse://u:"+pw+"@h:9000/db\n")
	tests := []struct {
		name, body string
		env        map[string]string
		field      string // "" means valid
		check      func(t *testing.T, c Config)
	}{
		{name: "no security (default)", body: ""},
		{name: "scram with password file", body: "kafka:\n  sasl:\n    mechanism: SCRAM-SHA-256\n    username: u\n    password_file: " + pwFile + "\n",
			check: func(t *testing.T, c Config) {
				if string(c.Kafka.SASL.Password) != pw {
					t.Error("password not read from the file (or its newline kept)")
				}
			}},
		{name: "plain with password from env", body: "kafka:\n  sasl:\n    mechanism: PLAIN\n    username: u\n",
			env: map[string]string{"DPINSTRUCT_KAFKA_SASL_PASSWORD": pw},
			check: func(t *testing.T, c Config) {
				if string(c.Kafka.SASL.Password) != pw {
					t.Error("password not taken from the environment")
				}
			}},
		{name: "everything from env", body: "",
			env: map[string]string{"DPINSTRUCT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "DPINSTRUCT_KAFKA_SASL_USERNAME": "u",
				"DPINSTRUCT_KAFKA_SASL_PASSWORD_FILE": pwFile, "DPINSTRUCT_KAFKA_TLS_ENABLED": "true",
				"DPINSTRUCT_KAFKA_TLS_INSECURE_SKIP_VERIFY": "true", "DPINSTRUCT_CLICKHOUSE_DSN_FILE": goodDSN},
			check: func(t *testing.T, c Config) {
				if string(c.Kafka.SASL.Password) != pw || !c.Kafka.TLS.Enabled || !c.Kafka.TLS.InsecureSkipVerify ||
					c.ClickHouse.DSN != "clickhouse://u:"+pw+"@h:9000/db" {
					t.Errorf("environment not applied: %+v", c)
				}
			}},
		{name: "tls with system roots", body: "kafka:\n  tls:\n    enabled: true\n    server_name: kafka.internal\n"},
		{name: "unknown mechanism", body: "kafka:\n  sasl:\n    mechanism: GSSAPI\n    username: u\n    password: x\n", field: "kafka.sasl.mechanism"},
		{name: "lower-case mechanism", body: "kafka:\n  sasl:\n    mechanism: plain\n    username: u\n    password: x\n", field: "kafka.sasl.mechanism"},
		{name: "mechanism without username", body: "kafka:\n  sasl:\n    mechanism: PLAIN\n    password: x\n", field: "kafka.sasl.username"},
		{name: "mechanism without password", body: "kafka:\n  sasl:\n    mechanism: SCRAM-SHA-256\n    username: u\n", field: "kafka.sasl.password"},
		{name: "username without mechanism", body: "kafka:\n  sasl:\n    username: u\n    password: x\n", field: "kafka.sasl.mechanism"},
		{name: "password and password file", body: "kafka:\n  sasl:\n    mechanism: PLAIN\n    username: u\n    password_file: " + pwFile + "\n",
			env: map[string]string{"DPINSTRUCT_KAFKA_SASL_PASSWORD": "other"}, field: "kafka.sasl.password_file"},
		{name: "missing password file", body: "kafka:\n  sasl:\n    mechanism: PLAIN\n    username: u\n    password_file: " + missing + "\n", field: "kafka.sasl.password_file"},
		{name: "empty password file", body: "kafka:\n  sasl:\n    mechanism: PLAIN\n    username: u\n    password_file: " + emptyFile + "\n", field: "kafka.sasl.password_file"},
		{name: "tls field without enabled", body: "kafka:\n  tls:\n    insecure_skip_verify: true\n", field: "kafka.tls.enabled"},
		{name: "missing ca file", body: "kafka:\n  tls:\n    enabled: true\n    ca_file: " + missing + "\n", field: "kafka.tls.ca_file"},
		{name: "ca file without pem", body: "kafka:\n  tls:\n    enabled: true\n    ca_file: " + caFile + "\n", field: "kafka.tls.ca_file"},
		{name: "cert without key", body: "kafka:\n  tls:\n    enabled: true\n    cert_file: " + caFile + "\n", field: "kafka.tls.cert_file"},
		{name: "bad client cert", body: "kafka:\n  tls:\n    enabled: true\n    cert_file: " + caFile + "\n    key_file: " + caFile + "\n", field: "kafka.tls.cert_file"},
		{name: "clickhouse tls field without enabled", body: "clickhouse:\n  tls:\n    ca_file: " + caFile + "\n", field: "clickhouse.tls.enabled"},
		{name: "clickhouse missing ca file", body: "clickhouse:\n  tls:\n    enabled: true\n    ca_file: " + missing + "\n", field: "clickhouse.tls.ca_file"},
		{name: "clickhouse cert without key", body: "clickhouse:\n  tls:\n    enabled: true\n    cert_file: " + caFile + "\n", field: "clickhouse.tls.cert_file"},
		{name: "clickhouse tls from env", env: map[string]string{"DPINSTRUCT_CLICKHOUSE_TLS_ENABLED": "true", "DPINSTRUCT_CLICKHOUSE_TLS_SERVER_NAME": "ch.internal"},
			check: func(t *testing.T, c Config) {
				sc, err := SinkConfig(c.ClickHouse)
				if err != nil || sc.TLS == nil || sc.TLS.ServerName != "ch.internal" {
					t.Errorf("SinkConfig = %+v, %v; want TLS for ch.internal", sc.TLS, err)
				}
			}},
		{name: "missing dsn file", body: "clickhouse:\n  dsn_file: " + missing + "\n", field: "clickhouse.dsn_file"},
		{name: "dsn file with http", body: "clickhouse:\n  dsn_file: " + httpDSN + "\n", field: "clickhouse.dsn_file"},
		{name: "dsn file wins over dsn", body: "clickhouse:\n  dsn: clickhouse://a@b:1/c\n  dsn_file: " + goodDSN + "\n",
			check: func(t *testing.T, c Config) {
				if c.ClickHouse.DSN != "clickhouse://u:"+pw+"@h:9000/db" {
					t.Error("dsn_file did not replace dsn")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.body)
			t.Setenv("DPINSTRUCT_INSTANCE", "x")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := LoadConfig(p)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tt.check != nil {
					tt.check(t, cfg)
				}
				if _, err := cfg.Kafka.KafkaSecurity(); err != nil {
					t.Errorf("KafkaSecurity: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %q", err, tt.field)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const pw = "hunter2-very-secret"
	cfg := DefaultConfig()
	cfg.Kafka.SASL = SASLConfig{Mechanism: "PLAIN", Username: "u", Password: pw}
	s := cfg.Kafka.SASL.Password
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%d"} {
		out = append(out, fmt.Sprintf(verb, s), fmt.Sprintf(verb, cfg.Kafka.SASL), fmt.Sprintf(verb, cfg))
	}
	out = append(out, fmt.Sprint(s), fmt.Sprintln(cfg), s.String())
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(y), string(j))
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		slog.New(h).Info("config", "password", s, "sasl", cfg.Kafka.SASL, "cfg", cfg)
	}
	out = append(out, logs.String())
	for _, o := range out {
		if strings.Contains(o, pw) || strings.Contains(o, fmt.Sprintf("%x", pw)) {
			t.Errorf("secret printed: %s", o)
		}
	}
	if !strings.Contains(string(y), "password: xxxxx") {
		t.Errorf("YAML does not show the password as xxxxx:\n%s", y)
	}
	if Secret("").String() != "" {
		t.Error("an empty secret should print empty, so a missing one is visible")
	}
	if string(s) != pw {
		t.Error("string() must still give the value to the client")
	}
}
