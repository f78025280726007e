package connector

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/dpinstruct/dpinstruct/sink"
	"github.com/dpinstruct/dpinstruct/stream"
)

// NewLogger builds the structured logger the configuration asks for.
func NewLogger(w io.Writer, cfg ObservabilityConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// SinkConfig maps the connector's ClickHouse settings onto the sink's.
func SinkConfig(cfg ClickHouseConfig) (sink.Config, error) {
	sc := sink.Config{
		DSN:            cfg.DSN,
		MaxAttempts:    cfg.MaxAttempts,
		InitialBackoff: cfg.InitialBackoff,
		MaxBackoff:     cfg.MaxBackoff,
		Cluster:        cfg.Cluster,
	}
	if cfg.TLS.Enabled {
		tlsConfig, err := stream.NewTLSConfig(cfg.TLS.files())
		if err != nil {
			return sink.Config{}, fmt.Errorf("clickhouse.tls: %w", err)
		}
		sc.TLS = tlsConfig
	}
	return sc, nil
}

// OpenSink opens the ClickHouse sink cfg describes.
func OpenSink(ctx context.Context, cfg ClickHouseConfig) (*sink.Client, error) {
	sc, err := SinkConfig(cfg)
	if err != nil {
		return nil, err
	}
	return sink.Open(ctx, sc)
}

// RunOptions are the knobs of one `dpinstruct run`.
type RunOptions struct {
	// MaxWindows > 0 stops after that many windows are written and
	// committed by this run.
	MaxWindows int
	Logger     *slog.Logger
	// OnListen, when set, receives the metrics listener's address.
	OnListen func(addr string)
	// Progress, when set, is shown each long stage of a window (DP
	// training steps, sampling, filtering), for progress bars.
	Progress StageProgress
}

// Run connects to ClickHouse and Kafka as cfg says and runs the connector
// until ctx ends or opts.MaxWindows windows are written. It returns nil on
// a clean stop.
func Run(ctx context.Context, cfg Config, opts RunOptions) (err error) {
	log := opts.Logger
	if log == nil {
		log = NewLogger(os.Stderr, cfg.Observability)
	}
	metrics, health := NewMetrics(), &Health{}
	if cfg.Observability.Listen != "" {
		lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		addr, err := serveObservability(lctx, cfg.Observability.Listen, metrics, health, log)
		if err != nil {
			return err
		}
		log.Info("serving /metrics and /healthz", "addr", addr)
		if opts.OnListen != nil {
			opts.OnListen(addr)
		}
	}

	sec, err := cfg.Kafka.KafkaSecurity()
	if err != nil {
		return err
	}
	if cfg.Kafka.SASL.Mechanism == stream.SASLPlain && !cfg.Kafka.TLS.Enabled {
		log.Warn("kafka.sasl.mechanism PLAIN without kafka.tls.enabled sends the password unencrypted")
	}
	if cfg.Kafka.TLS.InsecureSkipVerify {
		log.Warn("kafka.tls.insecure_skip_verify: the broker's certificate is not checked; anyone on the path can impersonate it")
	}
	if err := stream.CheckBrokers(ctx, cfg.Kafka.Brokers, sec.Dialer(), 10*time.Second); err != nil {
		return fmt.Errorf("kafka (kafka.brokers): %w", err)
	}
	ch, err := OpenSink(ctx, cfg.ClickHouse)
	if err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	defer ch.Close()
	if cfg.ClickHouse.Migrate {
		applied, err := ch.Migrate(ctx)
		if err != nil {
			return fmt.Errorf("clickhouse migrate: %w", err)
		}
		if len(applied) > 0 {
			log.Info("applied schema migrations", "migrations", applied)
		}
	}
	if err := ch.CheckSchema(ctx); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	info := ch.Server()
	log.Info("connected to clickhouse", "version", info.Version, "insert_dedup_token", info.SupportsInsertDedupToken)

	var dlq DeadLetters
	if cfg.Kafka.DeadLetterTopic != "" {
		d := stream.NewDeadLetter(cfg.Kafka.Brokers, cfg.Kafka.DeadLetterTopic, sec.Transport())
		defer d.Close()
		dlq = d
	}
	proc, err := NewProcessor(cfg.Processor)
	if err != nil {
		return err
	}
	if sp, ok := proc.(interface{ SetProgress(StageProgress) }); ok && opts.Progress != nil {
		sp.SetProgress(opts.Progress)
	}
	if dp, ok := proc.(*DPProcessor); ok {
		dp.log = log
		dp.unit, dp.maxPerUser, dp.accountant = cfg.Privacy.Unit, cfg.Privacy.MaxRecordsPerUser, cfg.Privacy.Accountant
	}
	newSource := func() (Source, error) {
		return stream.NewSource(stream.SourceConfig{
			Brokers:         cfg.Kafka.Brokers,
			Topic:           cfg.Kafka.Topic,
			GroupID:         cfg.Kafka.GroupID,
			MaxBytes:        cfg.Kafka.MaxFetchBytes,
			QueueCapacity:   cfg.Kafka.QueueCapacity,
			StartFromLatest: cfg.Kafka.StartFromLatest,
			SessionTimeout:  cfg.Kafka.SessionTimeout,
			Dialer:          sec.Dialer(),
		})
	}
	var out Output
	if cfg.Kafka.OutputTopic != "" {
		o := stream.NewTopicOutput(cfg.Kafka.Brokers, cfg.Kafka.OutputTopic, sec)
		defer o.Close()
		if err := o.Ensure(ctx); err != nil {
			return fmt.Errorf("kafka (kafka.output_topic): %w", err)
		}
		out = o
	}
	budgets := []Budget{ch}
	if cfg.Privacy.LedgerFile != "" {
		budgets = append(budgets, sink.FileLedger{Path: cfg.Privacy.LedgerFile})
	}
	c, err := New(cfg, Deps{
		NewSource:  newSource,
		Ledger:     ch,
		Budgets:    budgets,
		Output:     out,
		Deliveries: ch,
		DeadLetter: dlq,
		Processor:  proc,
		Metrics:    metrics,
		Health:     health,
		Logger:     log,
	}, opts.MaxWindows)
	if err != nil {
		return err
	}
	log.Info("connector started", "topic", cfg.Kafka.Topic, "group", cfg.Kafka.GroupID,
		"kafka_sasl", cfg.Kafka.SASL.Mechanism, "kafka_tls", cfg.Kafka.TLS.Enabled,
		"instance", cfg.Instance, "window_records", cfg.Window.MaxRecords, "window_duration", cfg.Window.MaxDuration,
		"processor", cfg.Processor.Name, "window_epsilon", cfg.Privacy.Epsilon, "window_delta", cfg.Privacy.Delta,
		"lifetime_epsilon", cfg.Privacy.LifetimeEpsilon)
	return c.Run(ctx)
}
