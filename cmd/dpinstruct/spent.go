package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/connector"
	"github.com/dpinstruct/dpinstruct/sink"
)

func newPrivacySpentCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "spent",
		Short: "The consumer group's privacy spend so far, from the privacy ledger",
		Long: `Reads the privacy_ledger table (and privacy.ledger_file when the configuration
sets one) and prints the group's spend under basic composition: the sum of
epsilon and of delta over every charged window attempt, the number of
attempts, privacy.lifetime_epsilon and what is left of it. A window processed
twice (a crash after it was charged) counts twice: the ledger never
under-counts. The last line is machine-readable:
  spent epsilon=<sum> delta=<sum> attempts=<n>`,
		Example: `  dpinstruct privacy spent --config deploy/local/example.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := connector.LoadConfig(path)
			if err != nil {
				return usageError{err}
			}
			ch, err := connector.OpenSink(cmd.Context(), cfg.ClickHouse)
			if err != nil {
				return err
			}
			defer ch.Close()
			group := cfg.Kafka.GroupID
			eps, delta, n, err := ch.Spent(cmd.Context(), group)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "group %s, ClickHouse privacy_ledger: %d window attempts, epsilon %g, delta %g\n", group, n, eps, delta)
			if cfg.Privacy.LedgerFile != "" {
				fe, fd, fn, err := sink.FileLedger{Path: cfg.Privacy.LedgerFile}.Spent(cmd.Context(), group)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "group %s, file %s: %d window attempts, epsilon %g, delta %g\n", group, cfg.Privacy.LedgerFile, fn, fe, fd)
				// Report the larger copy: the cap is checked against each.
				if fe > eps {
					eps, delta, n = fe, fd, fn
				}
			}
			if c := cfg.Privacy.LifetimeEpsilon; c > 0 {
				fmt.Fprintf(out, "lifetime cap %g, left %g (each window asks for %g)\n", c, max(0, c-eps), cfg.Privacy.Epsilon)
			} else {
				fmt.Fprintln(out, "no lifetime cap (privacy.lifetime_epsilon is 0)")
			}
			fmt.Fprintf(out, "spent epsilon=%g delta=%g attempts=%d\n", eps, delta, n)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "YAML configuration file (as for run)")
	return cmd
}
