package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/connector"
)

func newRunCmd() *cobra.Command {
	var (
		path       string
		maxWindows int
		progress   bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the connector: Kafka -> windows -> processor -> ClickHouse",
		Long: `Consumes the configured topic in a consumer group, cuts the records of each
partition into tumbling windows (by record count and/or duration), records each
window's offset range in ClickHouse before processing it, writes the
processor's output and the window's metadata, and only then commits the
window's offsets. A crash at any point loses nothing and writes nothing twice.

Configuration: a YAML file (see deploy/local/example.yaml, which documents
every field), overridden by DPINSTRUCT_* environment variables, for example
DPINSTRUCT_CLICKHOUSE_DSN or DPINSTRUCT_KAFKA_BROKERS=host1:9092,host2:9092.
Without --config, defaults plus environment are used.

Metrics are served on observability.listen (/metrics, /healthz).
SIGTERM finishes the window being processed, commits it, and exits; windows
still filling are left uncommitted for the next run.

Privacy budget: before a window's processor reads a record, the window is
charged privacy.epsilon / privacy.delta in the privacy_ledger table (and in
privacy.ledger_file when set). If the charge would take the consumer group's
spend, composed per privacy unit (see privacy spent), past
privacy.lifetime_epsilon, the window is refused: nothing is trained or
released, its offsets stay uncommitted, and the process exits with code 3.

Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration,
3 privacy budget exhausted (privacy.lifetime_epsilon reached).`,
		Example: `  dpinstruct run --config deploy/local/example.yaml
  dpinstruct run --config deploy/local/example.yaml --max-windows 2
  DPINSTRUCT_WINDOW_MAX_RECORDS=500 dpinstruct run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := connector.LoadConfig(path)
			if err != nil {
				return usageError{err}
			}
			if maxWindows < 0 {
				return usageError{fmt.Errorf("--max-windows must be >= 0")}
			}
			log := connector.NewLogger(cmd.ErrOrStderr(), cfg.Observability)
			opts := connector.RunOptions{MaxWindows: maxWindows, Logger: log}
			if progress {
				opts.Progress = &stageBars{w: cmd.ErrOrStderr()}
			}
			return connector.Run(cmd.Context(), cfg, opts)
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "YAML configuration file")
	cmd.Flags().IntVar(&maxWindows, "max-windows", 0, "exit 0 after this many windows are written and committed (0: run until stopped)")
	cmd.Flags().BoolVar(&progress, "progress", false, "draw a progress bar with ETA for each long stage of a window (DP training, sampling, filter) on stderr")
	return cmd
}
