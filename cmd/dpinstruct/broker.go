package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/stream/broker"
)

func newBrokerCmd() *cobra.Command {
	var opts broker.Options
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run an embedded Kafka-protocol broker (for trials, demos and tests)",
		Long: `Runs franz-go's in-process Kafka-protocol broker (kfake) on one address until
SIGTERM or Ctrl-C. Any Kafka client, kafka-go and kcat included, can talk to it.
Topics are created on first use with --partitions partitions.

It keeps messages in memory only: use a real Kafka cluster for anything that
must survive a restart of this process.`,
		Example: `  dpinstruct broker --listen 127.0.0.1:9092 --partitions 3
  dpinstruct broker --listen 127.0.0.1:0 --topic instructions   # pick a free port`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := broker.Start(opts)
			if err != nil {
				return err
			}
			defer b.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "broker listening on %s\n", b.Addr())
			<-cmd.Context().Done()
			fmt.Fprintln(cmd.ErrOrStderr(), "broker stopping")
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Listen, "listen", "127.0.0.1:9092", "host:port to listen on (port 0 picks a free one)")
	cmd.Flags().IntVar(&opts.Partitions, "partitions", 1, "partitions of each topic it creates")
	cmd.Flags().StringSliceVar(&opts.Topics, "topic", nil, "topics to create at start (repeatable)")
	return cmd
}
