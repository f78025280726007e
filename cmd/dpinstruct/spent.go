package main

import (
	"fmt"
	"io"

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
sets one) and prints the group's spend two ways, with the number of charged
window attempts:
  composed  per privacy unit (a record, or a user with privacy.unit: user):
            the charges that read a unit compose by Renyi DP where their plan
            says what ran (other charges add their epsilon and delta), and the
            worst unit is shown. privacy.lifetime_epsilon is checked against
            this figure, and what is left of it is printed.
  summed    basic composition: the sum of epsilon and of delta over every
            charged attempt, whatever the unit (never below the composed one).
A window processed twice (a crash after its charge) counts twice; the ledger never
under-counts. The last line is machine-readable (full precision):
  spent epsilon=<composed> delta=<composed> summed_epsilon=<sum> summed_delta=<sum> attempts=<n>`,
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
			comp := connector.Lifetime{Unit: cfg.Privacy.Unit}
			sp, err := ch.Spent(cmd.Context(), group, comp)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printSpending(out, fmt.Sprintf("group %s, ClickHouse privacy_ledger", group), cfg.Privacy.Unit, sp)
			if cfg.Privacy.LedgerFile != "" {
				fsp, err := sink.FileLedger{Path: cfg.Privacy.LedgerFile}.Spent(cmd.Context(), group, comp)
				if err != nil {
					return err
				}
				printSpending(out, fmt.Sprintf("group %s, file %s", group, cfg.Privacy.LedgerFile), cfg.Privacy.Unit, fsp)
				// Report the larger copy: the cap is checked against each.
				if fsp.Composed.Epsilon > sp.Composed.Epsilon {
					sp = fsp
				}
			}
			if c := cfg.Privacy.LifetimeEpsilon; c > 0 {
				fmt.Fprintf(out, "lifetime cap %g, left %.3f of the composed spend (each window asks for %g)\n",
					c, max(0, c-sp.Composed.Epsilon), cfg.Privacy.Epsilon)
			} else {
				fmt.Fprintln(out, "no lifetime cap (privacy.lifetime_epsilon is 0)")
			}
			fmt.Fprintf(out, "spent epsilon=%g delta=%g summed_epsilon=%g summed_delta=%g attempts=%d\n",
				sp.Composed.Epsilon, sp.Composed.Delta, sp.Summed.Epsilon, sp.Summed.Delta, sp.Attempts)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "YAML configuration file (as for run)")
	return cmd
}

// printSpending prints one ledger copy's spend for people: both figures,
// epsilon to three decimals, and the unit that attains the composed one.
func printSpending(out io.Writer, where, unit string, sp sink.Spending) {
	fmt.Fprintf(out, "%s: %d window attempts\n", where, sp.Attempts)
	fmt.Fprintf(out, "  composed per %s (RDP where a plan allows): epsilon %.3f, delta %g; worst: %s\n",
		unit, sp.Composed.Epsilon, sp.Composed.Delta, worstUnit(sp.Composed))
	fmt.Fprintf(out, "  summed (every attempt added): epsilon %.3f, delta %g\n", sp.Summed.Epsilon, sp.Summed.Delta)
}

// worstUnit names the unit a composed total describes.
func worstUnit(t sink.Total) string {
	if t.Unit == "" {
		return "nothing charged"
	}
	return t.Unit
}
