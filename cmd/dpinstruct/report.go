package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/connector"
)

func newReportCmd() *cobra.Command {
	var (
		path    string
		samples int
	)
	cmd := &cobra.Command{
		Use:   "report",
		Short: "What the connector released: windows, epsilon per window and in total, sample instructions, next SQL",
		Long: `Reads ClickHouse and prints, for the configured consumer group: every written
window (offsets, records, synthetic rows, the (epsilon, delta) it was released
under), the privacy ledger's spend (composed per privacy unit, as "privacy
spent" shows it, and summed) and what is left of privacy.lifetime_epsilon, a sample of released synthetic instructions, and the
SQL an analyst would run next. Everything it prints is either DP output or
stream metadata; it never reads the private topic.`,
		Example: `  dpinstruct report --config deploy/local/demo.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := connector.LoadConfig(path)
			if err != nil {
				return usageError{err}
			}
			ctx := cmd.Context()
			ch, err := connector.OpenSink(ctx, cfg.ClickHouse)
			if err != nil {
				return err
			}
			defer ch.Close()
			group := cfg.Kafka.GroupID
			ws, err := ch.WrittenWindows(ctx, group)
			if err != nil {
				return err
			}
			sp, err := ch.Spent(ctx, group, connector.Lifetime{Unit: cfg.Privacy.Unit})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Consumer group %s: %d windows written\n\n", group, len(ws))
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "window\tpartition:offsets\trecords\tsynthetic\tepsilon\tdelta\tprocessor\t")
			var records, rows uint64
			for _, w := range ws {
				var ranges []string
				for i, p := range w.Partitions {
					ranges = append(ranges, fmt.Sprintf("%d:%d-%d", p, w.FirstOffsets[i], w.LastOffsets[i]))
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.3f\t%g\t%s\t\n", w.ID, strings.Join(ranges, ","), w.Records, w.OutputRows, w.Epsilon, w.Delta, w.Processor)
				records += w.Records
				rows += w.OutputRows
			}
			fmt.Fprintf(tw, "total\t\t%d\t%d\t\t\t\t\n", records, rows)
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "\nPrivacy: the ledger's %d charged attempts compose, per %s, to epsilon %.3f,\n"+
				"delta %g (worst: %s); summed, epsilon %.3f, delta %g.\n",
				sp.Attempts, cfg.Privacy.Unit, sp.Composed.Epsilon, sp.Composed.Delta, worstUnit(sp.Composed),
				sp.Summed.Epsilon, sp.Summed.Delta)
			if c := cfg.Privacy.LifetimeEpsilon; c > 0 {
				fmt.Fprintf(out, "Lifetime cap %g: %.3f left.\n", c, max(0, c-sp.Composed.Epsilon))
			}
			if samples > 0 {
				ss, err := ch.SamplePublished(ctx, group, samples)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "\n%d synthetic instructions (DP output; safe to read):\n", len(ss))
				for i, s := range ss {
					fmt.Fprintf(out, "%3d. [window %s, cluster %d] %s\n", i+1, s.WindowID, s.Cluster, printable(s.Text))
				}
			}
			fmt.Fprintf(out, `
What an analyst runs next (clickhouse-client, database of %s):
  SELECT window_id, records, output_rows, epsilon, delta FROM windows FINAL WHERE status = 'written';
  SELECT window_id, cluster, count() AS n FROM published_instructions GROUP BY window_id, cluster ORDER BY n DESC LIMIT 20;
  SELECT text FROM published_instructions WHERE positionCaseInsensitive(text, 'python') > 0 LIMIT 20;
  SELECT window_id, attempt, epsilon, delta, mechanism, params FROM privacy_ledger WHERE group_id = '%s';
`, connector.RedactDSN(cfg.ClickHouse.DSN), group)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "YAML configuration file (as for run)")
	cmd.Flags().IntVar(&samples, "samples", 10, "synthetic instructions to show")
	return cmd
}

// printable flattens whitespace and shows control characters (a generator
// can emit any byte, including terminal escape sequences) as \uXXXX, so a
// report printed to a terminal cannot be used to drive it.
func printable(s string) string {
	var b strings.Builder
	for _, r := range strings.Join(strings.Fields(s), " ") {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
