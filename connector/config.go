package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"go.yaml.in/yaml/v3"

	"github.com/dpinstruct/dpinstruct/stream"
)

// Config is the connector's whole configuration. It is read from a YAML
// file (see deploy/local/example.yaml, which documents every field) and
// then overridden field by field from DPINSTRUCT_* environment variables,
// so a container can keep one file and change brokers or DSNs per
// environment. A field that is unset in both keeps the default from
// DefaultConfig.
type Config struct {
	Kafka         KafkaConfig         `yaml:"kafka" envPrefix:"KAFKA_"`
	ClickHouse    ClickHouseConfig    `yaml:"clickhouse" envPrefix:"CLICKHOUSE_"`
	Window        WindowConfig        `yaml:"window" envPrefix:"WINDOW_"`
	Processor     ProcessorConfig     `yaml:"processor" envPrefix:"PROCESSOR_"`
	Privacy       PrivacyConfig       `yaml:"privacy" envPrefix:"PRIVACY_"`
	Observability ObservabilityConfig `yaml:"observability" envPrefix:"OBSERVABILITY_"`
	// Instance names this process in the window ledger. A restarted process
	// with the same name takes over its own unwritten windows at once instead
	// of waiting for their lease to lapse, so give each replica a stable name
	// (a StatefulSet pod name, say). Default: hostname-pid.
	Instance string `yaml:"instance" env:"INSTANCE"`
	// ShutdownTimeout bounds how long SIGTERM waits for the window being
	// processed to be written and committed before giving up on it (it is
	// then replayed by the next run; nothing is lost).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"SHUTDOWN_TIMEOUT"`
}

// KafkaConfig says where records come from and where bad ones go.
type KafkaConfig struct {
	Brokers []string `yaml:"brokers" env:"BROKERS"`
	Topic   string   `yaml:"topic" env:"TOPIC"`
	GroupID string   `yaml:"group_id" env:"GROUP_ID"`
	// Format is "json" (an object with text and optional id, user_id, ts)
	// or "text" (the whole value is the instruction).
	Format string `yaml:"format" env:"FORMAT"`
	// UserIDFromKey takes user_id from the message key when the value has
	// none. Keying by user is what later lets replicas hold disjoint users.
	UserIDFromKey bool `yaml:"user_id_from_key" env:"USER_ID_FROM_KEY"`
	// MaxMessageBytes rejects (to the dead-letter topic) any value larger
	// than this, before it is parsed.
	MaxMessageBytes int `yaml:"max_message_bytes" env:"MAX_MESSAGE_BYTES"`
	// DeadLetterTopic receives malformed, empty, non-UTF-8 and oversized
	// messages byte for byte, with a reason header. It must live on the same
	// cluster: it is the one place outside a window where private text may
	// be stored. Empty disables it, and bad messages then stop the
	// connector rather than being skipped silently.
	DeadLetterTopic string `yaml:"dead_letter_topic" env:"DEAD_LETTER_TOPIC"`
	// OutputTopic, when set, also receives every written window's
	// synthetic instructions (JSON values keyed by window id, headers
	// dpinstruct-window/-attempt/-seq), exactly once per window id: all of
	// a window's messages go to one partition, whose end offset is recorded
	// in ClickHouse before producing, so a delivery cut short by a crash is
	// completed by reading back and sending only what is missing. It holds
	// DP output only. Delivery happens after the ClickHouse write and
	// before the offset commit; a broker outage therefore stalls commits.
	OutputTopic string `yaml:"output_topic" env:"OUTPUT_TOPIC"`
	// StartFromLatest makes a group with no committed offsets start at the
	// end of the topic instead of the beginning.
	StartFromLatest bool `yaml:"start_from_latest" env:"START_FROM_LATEST"`
	// QueueCapacity bounds how many fetched messages kafka-go buffers ahead
	// of the connector; together with MaxFetchBytes it is the backpressure
	// bound while a window is processed.
	QueueCapacity int `yaml:"queue_capacity" env:"QUEUE_CAPACITY"`
	MaxFetchBytes int `yaml:"max_fetch_bytes" env:"MAX_FETCH_BYTES"`
	// SessionTimeout: after a crash, the dead member's partitions wait this
	// long before another member takes them. Shorter recovers faster but
	// evicts members on long pauses.
	SessionTimeout time.Duration `yaml:"session_timeout" env:"SESSION_TIMEOUT"`
	// SASL authenticates every Kafka connection (source, dead letters,
	// output topic). Empty mechanism: no authentication.
	SASL SASLConfig `yaml:"sasl" envPrefix:"SASL_"`
	// TLS encrypts every Kafka connection.
	TLS TLSConfig `yaml:"tls" envPrefix:"TLS_"`
}

// SASLConfig is Kafka SASL authentication. The password comes from
// Password (best set through DPINSTRUCT_KAFKA_SASL_PASSWORD) or from the
// file PasswordFile names (a mounted Kubernetes secret, say), never both.
// It is never printed: see [Secret].
type SASLConfig struct {
	// Mechanism is "" (none), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. PLAIN
	// sends the password as is: use it only with TLS.
	Mechanism string `yaml:"mechanism" env:"MECHANISM"`
	Username  string `yaml:"username" env:"USERNAME"`
	Password  Secret `yaml:"password" env:"PASSWORD"`
	// PasswordFile is read once at start; surrounding whitespace (a
	// trailing newline) is dropped.
	PasswordFile string `yaml:"password_file" env:"PASSWORD_FILE"`
}

// TLSConfig is a TLS client configuration. The files are PEM.
type TLSConfig struct {
	Enabled bool `yaml:"enabled" env:"ENABLED"`
	// CAFile holds the CA certificates that sign the server's certificate;
	// empty means the system's roots.
	CAFile string `yaml:"ca_file" env:"CA_FILE"`
	// CertFile and KeyFile are a client certificate for mutual TLS (both
	// or neither).
	CertFile string `yaml:"cert_file" env:"CERT_FILE"`
	KeyFile  string `yaml:"key_file" env:"KEY_FILE"`
	// ServerName is the name the server's certificate must carry, when it
	// differs from the host dialed.
	ServerName string `yaml:"server_name" env:"SERVER_NAME"`
	// InsecureSkipVerify accepts any server certificate. Traffic is still
	// encrypted but the server is not authenticated: anyone on the path
	// can impersonate it and read everything, passwords included. For
	// trials only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" env:"INSECURE_SKIP_VERIFY"`
}

// ClickHouseConfig says where output and the window ledger go.
type ClickHouseConfig struct {
	// DSN is clickhouse://user:password@host:port/database (native
	// protocol). Prefer DPINSTRUCT_CLICKHOUSE_DSN over putting a password in
	// the file.
	DSN string `yaml:"dsn" env:"DSN"`
	// DSNFile, when set, names a file holding the DSN (a mounted Kubernetes
	// secret, say), read once at start; it replaces DSN. TLS is asked for
	// either in the DSN (?secure=true, verified against the system roots;
	// &skip_verify=true accepts any certificate) or, with a private CA or a
	// client certificate, in TLS below, which then replaces the DSN's.
	DSNFile        string        `yaml:"dsn_file" env:"DSN_FILE"`
	MaxAttempts    int           `yaml:"max_attempts" env:"MAX_ATTEMPTS"`
	InitialBackoff time.Duration `yaml:"initial_backoff" env:"INITIAL_BACKOFF"`
	MaxBackoff     time.Duration `yaml:"max_backoff" env:"MAX_BACKOFF"`
	// Migrate applies pending schema migrations at start; off, the
	// connector refuses to start on an outdated schema.
	Migrate bool `yaml:"migrate" env:"MIGRATE"`
	// Cluster, when set, names a cluster in the servers' <remote_servers>
	// (any number of shards and replicas): migrations then run ON CLUSTER,
	// each table becomes a Replicated* table per shard (T_local, in
	// ZooKeeper under /clickhouse/tables/{shard}/<database>/T_local) behind
	// a Distributed table T sharded by its sorting key, inserts wait for
	// every shard (insert_distributed_sync), and a retried insert is stored
	// once. Trade-offs: each write costs a round trip to every shard it
	// touches; with several replicas per shard the connector's ClickHouse
	// user needs load_balancing=in_order (checked at start) so every
	// replica of dpinstruct reads what another wrote; the shard count must
	// not change for the life of a database. Empty: one server, plain
	// MergeTree tables.
	Cluster string `yaml:"cluster" env:"CLUSTER"`
	// TLS, when enabled, encrypts the native protocol with these files and
	// checks (the same fields as kafka.tls): ca_file for a private CA,
	// cert_file and key_file for mutual TLS. Point the DSN at the server's
	// TLS port (tcp_port_secure, 9440 by convention).
	TLS TLSConfig `yaml:"tls" envPrefix:"TLS_"`
}

// clusterNameRe: clickhouse.cluster is spliced into DDL (ON CLUSTER).
var clusterNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// WindowConfig says how records are cut into windows and where a window
// larger than memory goes.
type WindowConfig struct {
	// MaxRecords closes a window after this many offsets (good records and
	// dead letters alike). 0 means no count limit.
	MaxRecords int64 `yaml:"max_records" env:"MAX_RECORDS"`
	// MaxDuration closes a window this long after its first record, even
	// if MaxRecords was not reached. 0 means no time limit.
	MaxDuration time.Duration `yaml:"max_duration" env:"MAX_DURATION"`
	// BatchRows and BatchBytes bound each Arrow record batch.
	BatchRows  int   `yaml:"batch_rows" env:"BATCH_ROWS"`
	BatchBytes int64 `yaml:"batch_bytes" env:"BATCH_BYTES"`
	// MemoryBytes bounds one open window in memory; beyond it batches spill
	// to Arrow IPC files in SpillDir (mode 0700, deleted after commit).
	// Spill files hold private text: put SpillDir on a disk only the
	// connector can read.
	MemoryBytes int64  `yaml:"memory_bytes" env:"MEMORY_BYTES"`
	SpillDir    string `yaml:"spill_dir" env:"SPILL_DIR"`
	// PlanSettle is how long the connector waits after recording a window's
	// range before reading the ledger back to detect a concurrent plan. It
	// must exceed one second, the resolution of ClickHouse's clock that
	// orders plans.
	PlanSettle time.Duration `yaml:"plan_settle" env:"PLAN_SETTLE"`
	// Lease is how long a planned window belongs to the process that
	// planned it; the process renews it while it works. Another process
	// replays an unwritten window only after its lease lapses.
	Lease time.Duration `yaml:"lease" env:"LEASE"`
}

// ProcessorConfig picks what happens to a window: "dp" (the method: DP
// fine-tuning, sampling, the DP filter) or "count" (the data plane's
// stand-in, for tests: rows derived from record counts, never from text).
type ProcessorConfig struct {
	Name string `yaml:"name" env:"NAME"`
	// RowsPerRecords: the count processor emits one row per this many
	// records (at least one row for a non-empty window).
	RowsPerRecords int `yaml:"rows_per_records" env:"ROWS_PER_RECORDS"`

	// The dp processor's method settings (models/dpwindow; zero values
	// take its defaults). ExpectedBatch and Epochs set the sampling rate
	// q = expected_batch / records and the steps; more steps at the same
	// epsilon means more noise per step.
	ExpectedBatch int     `yaml:"expected_batch" env:"EXPECTED_BATCH"`
	Epochs        float64 `yaml:"epochs" env:"EPOCHS"`
	Clip          float64 `yaml:"clip" env:"CLIP"`
	LearningRate  float64 `yaml:"learning_rate" env:"LEARNING_RATE"`
	SeqLen        int     `yaml:"seq_len" env:"SEQ_LEN"`
	// HistogramSigma is the filter's noise on cluster counts: its share of
	// the window's epsilon is fixed by it, DP-SGD gets the rest.
	HistogramSigma float64 `yaml:"histogram_sigma" env:"HISTOGRAM_SIGMA"`
	PoolFactor     float64 `yaml:"pool_factor" env:"POOL_FACTOR"`
	OutputFactor   float64 `yaml:"output_factor" env:"OUTPUT_FACTOR"`
	Clusters       int     `yaml:"clusters" env:"CLUSTERS"`
	// Embedding for the filter: model (the public base model's hidden
	// states) or lexical (fast; IDF fitted on the synthetic pool only).
	Embedding string `yaml:"embedding" env:"EMBEDDING"`
	// Backend runs the generator: "go" (pure Go, CPU), "go:<config>", or
	// "xla:<plugin>" (e.g. xla:cuda, or a path to a PJRT plugin .so) in a
	// binary built with -tags xla; deploy/gpu/README.md has the GPU recipe.
	// Plugins are never downloaded.
	Backend string `yaml:"backend" env:"BACKEND"`
	// BaseModel is a model folder to fine-tune (default: the shipped one).
	BaseModel string `yaml:"base_model" env:"BASE_MODEL"`
	// CheckpointDir keeps each window's DP-trained generator (base weights
	// and the window's adapters, ~20 MB) in CheckpointDir/<window id>, with
	// window.json naming the window, generator version and privacy plan:
	// DP output, safe to keep and to sample from later. Empty disables.
	CheckpointDir string `yaml:"checkpoint_dir" env:"CHECKPOINT_DIR"`
	// KeepCheckpoints bounds CheckpointDir: after each save, window folders
	// beyond the newest KeepCheckpoints are deleted, so a long-running
	// connector does not fill its disk (in Kubernetes, an emptyDir over its
	// sizeLimit gets the pod evicted). 0 keeps them all. Default 20
	// (~200 MB).
	KeepCheckpoints int `yaml:"keep_checkpoints" env:"KEEP_CHECKPOINTS"`
}

// PrivacyConfig is the privacy budget: what each window may spend and what
// the stream may spend in all.
//
// Every window is charged its (Epsilon, Delta) in the privacy ledger before
// its processor reads a record; a window whose charge would take the
// stream past LifetimeEpsilon is refused, and nothing of it is trained or
// released. The connector then exits with code 3, leaving the window's
// offsets uncommitted, so raising the cap (a deliberate, recorded decision)
// and restarting processes it; nothing is lost.
//
// Trade-off: the lifetime spend the cap is checked against is composed per
// privacy unit (Lifetime): at record level a record is spent on only by the
// window attempts that read it (its window, retries, overlapping recuts),
// so disjoint windows cost one window's epsilon (parallel composition); at
// user level (Unit "user") a user may be in every window, and all charges
// compose, by Renyi DP rather than by adding epsilons (20 windows at
// epsilon 4.2 compose to 13.5, not 84). The figure is never above the
// plain sum, which `privacy spent` prints beside it. See the README, "What
// the guarantee covers".
type PrivacyConfig struct {
	// Epsilon and Delta are each window's target: the DP processor
	// calibrates its noise so that everything the window releases (the
	// fine-tuned generator's samples and the filter's histogram together)
	// meets them. Smaller epsilon is more private and noisier. Delta should
	// stay well below one over the number of records in a window.
	Epsilon float64 `yaml:"epsilon" env:"EPSILON"`
	Delta   float64 `yaml:"delta" env:"DELTA"`
	// LifetimeEpsilon caps the stream's total spend: the worst privacy
	// unit's spend over every charged window of the consumer group,
	// composed as above. 0 means no cap. A window processed twice (a crash
	// after it trained) is charged twice, and both attempts compose: spend
	// is never under-counted.
	LifetimeEpsilon float64 `yaml:"lifetime_epsilon" env:"LIFETIME_EPSILON"`
	// LedgerFile, when set, keeps a second copy of every charge in a local
	// JSON-lines file (mode 0600, fsynced), besides the privacy_ledger
	// table in ClickHouse. A window trains only if both accept the charge,
	// and each checks the cap against its own total, so losing or
	// truncating either copy never lowers the spend the cap sees. Use one
	// file per replica; replicas must not share it.
	LedgerFile string `yaml:"ledger_file" env:"LEDGER_FILE"`
	// Unit is what one (epsilon, delta) protects. "record": one
	// instruction; a person who sends many is protected per instruction
	// (and, for verbatim repeats, once: duplicates are trained on once).
	// "user": everything one user sends in a window, identified by
	// user_id (or the message key with kafka.user_id_from_key); each user
	// keeps at most MaxRecordsPerUser records per window, chosen at
	// random, and sampling, clipping and the filter's histogram act on
	// users. Records without a user id count as users of their own.
	// Stronger, and noisier per record.
	Unit string `yaml:"unit" env:"UNIT"`
	// MaxRecordsPerUser bounds each user's records per window at user
	// level; more are dropped from training and voting (not from the
	// stream: their offsets are still committed).
	MaxRecordsPerUser int `yaml:"max_records_per_user" env:"MAX_RECORDS_PER_USER"`
	// Accountant calibrates each window's DP-SGD noise to Epsilon and
	// Delta, DP-SGD and the histogram composed exactly. All three are
	// valid upper bounds on the same mechanism; a tighter one needs less
	// noise for the same guarantee (the demo's window at epsilon 4: noise
	// multiplier 0.759 under pld, 0.761 under prv, 0.821 under rdp).
	//   - "pld" (default): privacy loss distributions (connect-the-dots),
	//     the tightest; about 1.5 s of calibration per window.
	//   - "prv": calibrated to the PRV accountant's upper bound (its
	//     estimate plus its proven error); a fraction of a second.
	//   - "rdp": Renyi DP with the improved conversion; a millisecond, and
	//     the most noise.
	// The ledger records which one priced a window (params.accountant) and
	// how far the charged epsilon may lie above the true one
	// (params.accountant_error, against the PRV lower bound).
	Accountant string `yaml:"accountant" env:"ACCOUNTANT"`
}

// ObservabilityConfig controls metrics, health and logs.
type ObservabilityConfig struct {
	// Listen serves /metrics (Prometheus) and /healthz. Loopback by default
	// so metrics are not exposed beyond the host unless asked; empty
	// disables the listener.
	Listen    string `yaml:"listen" env:"LISTEN"`
	LogLevel  string `yaml:"log_level" env:"LOG_LEVEL"`
	LogFormat string `yaml:"log_format" env:"LOG_FORMAT"`
}

// DefaultConfig returns the configuration used for every field a file and
// the environment leave unset.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Kafka: KafkaConfig{
			Brokers:         []string{"127.0.0.1:9092"},
			Topic:           "instructions",
			GroupID:         "dpinstruct",
			Format:          "json",
			UserIDFromKey:   true,
			MaxMessageBytes: 1 << 20,
			DeadLetterTopic: "instructions.dlq",
			QueueCapacity:   1000,
			MaxFetchBytes:   10 << 20,
			SessionTimeout:  30 * time.Second,
		},
		ClickHouse: ClickHouseConfig{
			DSN:            "clickhouse://default@127.0.0.1:19000/dpinstruct",
			MaxAttempts:    8,
			InitialBackoff: 200 * time.Millisecond,
			MaxBackoff:     10 * time.Second,
			Migrate:        true,
		},
		Window: WindowConfig{
			MaxRecords:  1000,
			MaxDuration: 10 * time.Minute,
			BatchRows:   8192,
			BatchBytes:  8 << 20,
			MemoryBytes: 256 << 20,
			SpillDir:    ".dpinstruct/spill",
			PlanSettle:  1500 * time.Millisecond,
			Lease:       2 * time.Minute,
		},
		Processor: ProcessorConfig{Name: "dp", RowsPerRecords: 10, ExpectedBatch: 32, Epochs: 1, Clip: 1, LearningRate: 5e-3,
			SeqLen: 32, HistogramSigma: 5, PoolFactor: 5, OutputFactor: 1, Embedding: "model",
			CheckpointDir: ".dpinstruct/checkpoints", KeepCheckpoints: 20, Backend: "go"},
		Privacy: PrivacyConfig{Epsilon: 4, Delta: 1e-6, Unit: "record", MaxRecordsPerUser: 4, Accountant: "pld"},
		Observability: ObservabilityConfig{
			Listen:    "127.0.0.1:9464",
			LogLevel:  "info",
			LogFormat: "text",
		},
		Instance:        fmt.Sprintf("%s-%d", host, os.Getpid()),
		ShutdownTimeout: 30 * time.Second,
	}
}

// LoadConfig reads path (YAML; unknown fields are an error so a typo does
// not silently fall back to a default), applies DPINSTRUCT_* environment
// overrides and validates the result. An empty path means defaults plus
// environment.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := decodeYAML(raw, &cfg); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := env.ParseWithOptions(&cfg, env.Options{Prefix: "DPINSTRUCT_"}); err != nil {
		return Config{}, fmt.Errorf("config from environment: %w", err)
	}
	if err := cfg.readSecretFiles(); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// readSecretFiles fills the password and the DSN from the files that name
// them. Errors name the field and the file, never the content.
func (c *Config) readSecretFiles() error {
	var errs []error
	if f := c.Kafka.SASL.PasswordFile; f != "" {
		if c.Kafka.SASL.Password != "" {
			errs = append(errs, &FieldError{Field: "kafka.sasl.password_file", Reason: "and kafka.sasl.password are both set: keep one"})
		} else if raw, err := os.ReadFile(f); err != nil {
			errs = append(errs, &FieldError{Field: "kafka.sasl.password_file", Reason: err.Error()})
		} else if p := strings.TrimSpace(string(raw)); p == "" {
			errs = append(errs, &FieldError{Field: "kafka.sasl.password_file", Reason: fmt.Sprintf("%s is empty", f)})
		} else {
			c.Kafka.SASL.Password = Secret(p)
		}
	}
	if f := c.ClickHouse.DSNFile; f != "" {
		if raw, err := os.ReadFile(f); err != nil {
			errs = append(errs, &FieldError{Field: "clickhouse.dsn_file", Reason: err.Error()})
		} else if d := strings.TrimSpace(string(raw)); d == "" {
			errs = append(errs, &FieldError{Field: "clickhouse.dsn_file", Reason: fmt.Sprintf("%s is empty", f)})
		} else {
			c.ClickHouse.DSN = d
		}
	}
	return errors.Join(errs...)
}

func decodeYAML(raw []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	// An empty file means "all defaults"; yaml reports it as io.EOF.
	err := dec.Decode(cfg)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	// yaml names only the line of a wrongly typed value; name the field too.
	var root yaml.Node
	_ = yaml.Unmarshal(raw, &root)
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		var line int
		if _, scanErr := fmt.Sscanf(m, "line %d:", &line); scanErr == nil {
			if field := fieldAtLine(&root, line, ""); field != "" {
				m = field + ": " + m
			}
		}
		msgs[i] = m
	}
	return errors.New(strings.Join(msgs, "; "))
}

// fieldAtLine returns the dotted path of the mapping key on line.
func fieldAtLine(n *yaml.Node, line int, prefix string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if f := fieldAtLine(c, line, prefix); f != "" {
				return f
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			if k.Line == line {
				return path
			}
			if f := fieldAtLine(v, line, path); f != "" {
				return f
			}
		}
	}
	return ""
}

// FieldError names the configuration field that is wrong, in the file's
// own dotted spelling, so the message points at the line to fix.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("config: %s %s", e.Field, e.Reason) }

// Validate checks every field and returns all problems at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, reason string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Reason: fmt.Sprintf(reason, args...)})
	}
	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers", "must list at least one host:port")
	}
	for _, b := range c.Kafka.Brokers {
		if !strings.Contains(b, ":") {
			bad("kafka.brokers", "entry %q must be host:port", b)
		}
	}
	if c.Kafka.Topic == "" {
		bad("kafka.topic", "must be set")
	}
	if c.Kafka.GroupID == "" {
		bad("kafka.group_id", "must be set")
	}
	if c.Kafka.Format != "json" && c.Kafka.Format != "text" {
		bad("kafka.format", "must be json or text, not %q", c.Kafka.Format)
	}
	if c.Kafka.MaxMessageBytes <= 0 {
		bad("kafka.max_message_bytes", "must be > 0")
	}
	if c.Kafka.OutputTopic != "" && (c.Kafka.OutputTopic == c.Kafka.Topic || c.Kafka.OutputTopic == c.Kafka.DeadLetterTopic) {
		bad("kafka.output_topic", "must differ from kafka.topic and kafka.dead_letter_topic")
	}
	if c.Kafka.DeadLetterTopic != "" && c.Kafka.DeadLetterTopic == c.Kafka.Topic {
		bad("kafka.dead_letter_topic", "must differ from kafka.topic")
	}
	if c.Kafka.QueueCapacity <= 0 {
		bad("kafka.queue_capacity", "must be > 0")
	}
	if c.Kafka.MaxFetchBytes <= 0 {
		bad("kafka.max_fetch_bytes", "must be > 0")
	}
	if c.Kafka.SessionTimeout < time.Second {
		bad("kafka.session_timeout", "must be at least 1s, got %s", c.Kafka.SessionTimeout)
	}
	c.validateKafkaSecurity(bad)
	c.ClickHouse.TLS.validate("clickhouse.tls", bad)
	if !strings.HasPrefix(c.ClickHouse.DSN, "clickhouse://") {
		field := "clickhouse.dsn"
		if c.ClickHouse.DSNFile != "" {
			field = "clickhouse.dsn_file"
		}
		// Never quote the DSN: it may hold a password.
		bad(field, "must start with clickhouse:// (native protocol)")
	}
	if cl := c.ClickHouse.Cluster; cl != "" && !clusterNameRe.MatchString(cl) {
		bad("clickhouse.cluster", "must be a plain identifier (letters, digits, _), got %q", cl)
	}
	if c.ClickHouse.MaxAttempts <= 0 {
		bad("clickhouse.max_attempts", "must be > 0")
	}
	if c.Window.MaxRecords < 0 {
		bad("window.max_records", "must be >= 0")
	}
	if c.Window.MaxDuration < 0 {
		bad("window.max_duration", "must be >= 0")
	}
	if c.Window.MaxRecords == 0 && c.Window.MaxDuration == 0 {
		bad("window.max_records", "or window.max_duration must be set, or windows never close")
	}
	if c.Window.BatchRows <= 0 {
		bad("window.batch_rows", "must be > 0")
	}
	if c.Window.BatchBytes <= 0 {
		bad("window.batch_bytes", "must be > 0")
	}
	for field, v := range map[string]float64{
		"processor.expected_batch": float64(c.Processor.ExpectedBatch), "processor.epochs": c.Processor.Epochs,
		"processor.clip": c.Processor.Clip, "processor.learning_rate": c.Processor.LearningRate,
		"processor.seq_len": float64(c.Processor.SeqLen), "processor.histogram_sigma": c.Processor.HistogramSigma,
		"processor.pool_factor": c.Processor.PoolFactor, "processor.output_factor": c.Processor.OutputFactor,
		"processor.clusters": float64(c.Processor.Clusters),
	} {
		if !(v >= 0) || math.IsInf(v, 0) {
			bad(field, "must be a finite number >= 0 (0: the method's default), got %v", v)
		}
	}
	if c.Processor.KeepCheckpoints < 0 {
		bad("processor.keep_checkpoints", "must be >= 0 (0: keep every checkpoint), got %d", c.Processor.KeepCheckpoints)
	}
	if c.Processor.SeqLen == 1 {
		bad("processor.seq_len", "must be at least 2 (an instruction token and the end of text)")
	}
	if c.Privacy.Unit != "record" && c.Privacy.Unit != "user" {
		bad("privacy.unit", "must be record or user, not %q", c.Privacy.Unit)
	}
	if c.Privacy.Accountant != "pld" && c.Privacy.Accountant != "prv" && c.Privacy.Accountant != "rdp" {
		bad("privacy.accountant", "must be pld, prv or rdp, not %q", c.Privacy.Accountant)
	}
	if c.Privacy.MaxRecordsPerUser < 1 {
		bad("privacy.max_records_per_user", "must be >= 1, got %d", c.Privacy.MaxRecordsPerUser)
	}
	if b := c.Processor.Backend; b != "go" && !strings.HasPrefix(b, "go:") && !strings.HasPrefix(b, "xla:") {
		bad("processor.backend", "must be go, go:<config> or xla:<plugin>, not %q", b)
	}
	if e := c.Processor.Embedding; e != "model" && e != "lexical" {
		bad("processor.embedding", "must be model or lexical, not %q", e)
	}
	if !(c.Privacy.Epsilon > 0) || math.IsInf(c.Privacy.Epsilon, 0) {
		bad("privacy.epsilon", "must be a finite number > 0, got %v", c.Privacy.Epsilon)
	}
	if !(c.Privacy.Delta > 0 && c.Privacy.Delta < 1) {
		bad("privacy.delta", "must be in (0, 1), got %v", c.Privacy.Delta)
	}
	if !(c.Privacy.LifetimeEpsilon >= 0) || math.IsInf(c.Privacy.LifetimeEpsilon, 0) {
		bad("privacy.lifetime_epsilon", "must be a finite number >= 0 (0: no cap), got %v", c.Privacy.LifetimeEpsilon)
	} else if c.Privacy.LifetimeEpsilon > 0 && c.Privacy.LifetimeEpsilon < c.Privacy.Epsilon {
		bad("privacy.lifetime_epsilon", "%v is below privacy.epsilon %v: no window could ever run", c.Privacy.LifetimeEpsilon, c.Privacy.Epsilon)
	}
	if c.Window.MemoryBytes <= 0 {
		bad("window.memory_bytes", "must be > 0")
	}
	if c.Window.SpillDir == "" {
		bad("window.spill_dir", "must be set")
	}
	if c.Window.PlanSettle <= time.Second {
		bad("window.plan_settle", "must exceed 1s (ClickHouse orders plans by a seconds clock), got %s", c.Window.PlanSettle)
	}
	if c.Window.Lease < 2*time.Second {
		bad("window.lease", "must be at least 2s, got %s", c.Window.Lease)
	}
	if _, ok := processors[c.Processor.Name]; !ok {
		bad("processor.name", "must be one of %s, not %q", processorNames(), c.Processor.Name)
	}
	if c.Processor.RowsPerRecords <= 0 {
		bad("processor.rows_per_records", "must be > 0")
	}
	switch c.Observability.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("observability.log_level", "must be debug, info, warn or error, not %q", c.Observability.LogLevel)
	}
	if c.Observability.LogFormat != "text" && c.Observability.LogFormat != "json" {
		bad("observability.log_format", "must be text or json, not %q", c.Observability.LogFormat)
	}
	if c.Instance == "" {
		bad("instance", "must not be empty")
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be > 0")
	}
	return errors.Join(errs...)
}

func (c Config) validateKafkaSecurity(bad func(field, reason string, args ...any)) {
	s := c.Kafka.SASL
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" {
			bad("kafka.sasl.mechanism", "must be set (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) when a SASL username or password is")
		}
	case stream.SASLPlain, stream.SASLScramSHA256, stream.SASLScramSHA512:
		if s.Username == "" {
			bad("kafka.sasl.username", "must be set with kafka.sasl.mechanism %s", s.Mechanism)
		}
		if s.Password == "" && s.PasswordFile == "" {
			bad("kafka.sasl.password", "or kafka.sasl.password_file must be set with kafka.sasl.mechanism %s", s.Mechanism)
		}
		if _, err := stream.NewSASL(s.Mechanism, s.Username, string(s.Password)); err != nil {
			bad("kafka.sasl.password", "is not usable: %v", err)
		}
	default:
		bad("kafka.sasl.mechanism", "must be empty, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, not %q", s.Mechanism)
	}
	c.Kafka.TLS.validate("kafka.tls", bad)
}

// validate checks a TLS section whose fields are named prefix.<field>.
func (t TLSConfig) validate(prefix string, bad func(field, reason string, args ...any)) {
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify {
			bad(prefix+".enabled", "must be true when other %s fields are set", prefix)
		}
		return
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad(prefix+".cert_file", "and %s.key_file must be set together", prefix)
		return
	}
	if _, err := stream.NewTLSConfig(t.files()); err != nil {
		field := prefix + ".ca_file"
		if t.CertFile != "" && !strings.Contains(err.Error(), "CA file") {
			field = prefix + ".cert_file"
		}
		bad(field, "%v", err)
	}
}

func (t TLSConfig) files() stream.TLSFiles {
	return stream.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
}

// KafkaSecurity builds the SASL mechanism and TLS configuration every
// Kafka client of the connector uses.
func (k KafkaConfig) KafkaSecurity() (*stream.Security, error) {
	m, err := stream.NewSASL(k.SASL.Mechanism, k.SASL.Username, string(k.SASL.Password))
	if err != nil {
		return nil, fmt.Errorf("kafka.sasl: %w", err)
	}
	sec := &stream.Security{SASL: m}
	if k.TLS.Enabled {
		if sec.TLS, err = stream.NewTLSConfig(k.TLS.files()); err != nil {
			return nil, fmt.Errorf("kafka.tls: %w", err)
		}
	}
	return sec, nil
}

// Secret is a configuration string that must never be shown: printed
// with fmt (any verb), marshalled to YAML or JSON, or logged with slog, a
// non-empty Secret reads "xxxxx". Convert it with string() only where the
// value is handed to the client that needs it.
type Secret string

const masked = "xxxxx"

func (s Secret) mask() string {
	if s == "" {
		return ""
	}
	return masked
}

// String masks the secret for fmt's %v and %s.
func (s Secret) String() string { return s.mask() }

// GoString masks the secret for fmt's %#v.
func (s Secret) GoString() string { return strconv.Quote(s.mask()) }

// Format masks the secret for every fmt verb, %x and %q included.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	if verb == 'q' {
		_, _ = io.WriteString(f, strconv.Quote(s.mask()))
		return
	}
	_, _ = io.WriteString(f, s.mask())
}

// LogValue masks the secret in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.mask()) }

// MarshalYAML masks the secret in `dpinstruct config check`.
func (s Secret) MarshalYAML() (any, error) { return s.mask(), nil }

// MarshalJSON masks the secret in JSON.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.mask()) }

// RedactDSN masks the password of a DSN for display.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
