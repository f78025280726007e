// Command dpinstruct is the connector's command line: an embedded broker
// for trials, a JSONL loader, the schema migrator and the connector itself.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/sink"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(execute(os.Args[1:]))
}

// execute runs the CLI and maps errors to exit codes: 0 ok, 1 runtime
// failure, 2 bad usage or configuration, 3 privacy budget exhausted.
func execute(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "dpinstruct:", err)
		var u usageError
		if errors.As(err, &u) {
			return 2
		}
		if errors.Is(err, sink.ErrBudgetExceeded) {
			return 3
		}
		return 1
	}
	return 0
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "dpinstruct",
		Short: "Learn from user instructions without anyone reading them",
		Long: `dpinstruct reads real user instructions from Kafka, cuts them into windows,
turns each window into synthetic instructions under differential privacy, and
writes those to ClickHouse. Raw instructions never leave the connector except
to the dead-letter topic on the same Kafka cluster.

A first session, all on this machine:

  deploy/local/clickhouse.sh start                  # local ClickHouse on 127.0.0.1:19000
  dpinstruct broker --listen 127.0.0.1:9092 &       # embedded Kafka-protocol broker
  dpinstruct produce --brokers 127.0.0.1:9092 --topic instructions \
      --file ../shared/data/dolly/prompts.jsonl --key user_id
  dpinstruct run --config deploy/local/example.yaml --max-windows 2

or simply: make demo`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newBrokerCmd(), newProduceCmd(), newRunCmd(), newMigrateCmd(), newConfigCmd(), newPretrainCmd(), newGenerateCmd(), newPrivacyCmd(), newEvalCmd(), newReportCmd(), newAuditCmd(), newQueueCmd(), newExportCmd(), newImportCmd(), newConvertCmd())
	return root
}
