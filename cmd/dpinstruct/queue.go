package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/connector"
	"github.com/dpinstruct/dpinstruct/sink"
)

const clickhouseFlagHelp = "ClickHouse DSN, clickhouse://user:password@host:port/database (default: $DPINSTRUCT_CLICKHOUSE_DSN or the local one)"

// openQueueSink opens ClickHouse like migrate does and checks the schema
// has the annotation tables.
func openQueueSink(cmd *cobra.Command, dsn string) (*sink.Client, error) {
	full, err := connector.LoadConfig("")
	if err != nil {
		return nil, usageError{err}
	}
	cfg := full.ClickHouse
	if dsn != "" {
		cfg.DSN = dsn
	}
	ch, err := connector.OpenSink(cmd.Context(), cfg)
	if err != nil {
		return nil, err
	}
	if err := ch.CheckSchema(cmd.Context()); err != nil {
		_ = ch.Close()
		return nil, err
	}
	return ch, nil
}

func newQueueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Annotation queue: hand out released synthetic instructions to annotators",
		Long: `The annotation queue holds the released synthetic instructions
(published_instructions: differentially private output, safe for people to
read) for human annotation. Each item is queued, claimed (leased by one
annotator for a while) or done. Leases expire: an item not completed in time
returns to the queue. Two claimers never hold the same item at once, even
when they claim at the same moment from different machines.

A session:

  dpinstruct queue fill                                   # queue newly released instructions
  dpinstruct queue claim --n 50 --annotator alice         # prints claim=<id>
  dpinstruct export --claim <id> --format labelstudio --out tasks.json
  ... annotate tasks.json in Label Studio, export its JSON ...
  dpinstruct import --file project-export.json            # stores annotations, marks items done
  dpinstruct queue progress

State lives in ClickHouse (annotation_queue, annotation_events, annotations;
views annotation_progress, synthetic_per_window, cluster_sizes). Run
dpinstruct migrate first.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newQueueFillCmd(), newQueueClaimCmd(), newQueueCompleteCmd(), newQueueReleaseCmd(), newQueueProgressCmd())
	return cmd
}

func newQueueFillCmd() *cobra.Command {
	var dsn string
	cmd := &cobra.Command{
		Use:   "fill",
		Short: "Queue every released synthetic instruction not queued yet",
		Long: `Adds every row of published_instructions that is not in annotation_queue yet,
as queued. Safe to run any number of times, also concurrently (cron, or
before each claim: queue claim does it unless --fill=false).`,
		Example: `  dpinstruct queue fill --clickhouse clickhouse://default@127.0.0.1:19000/dpinstruct`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ch, err := openQueueSink(cmd, dsn)
			if err != nil {
				return err
			}
			defer ch.Close()
			n, err := ch.Enqueue(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "queued %d new items\n", n)
			return nil
		},
	}
	cmd.Flags().StringVar(&dsn, "clickhouse", "", clickhouseFlagHelp)
	return cmd
}

func newQueueClaimCmd() *cobra.Command {
	var (
		dsn, annotator string
		n              int
		lease, settle  time.Duration
		fill           bool
	)
	cmd := &cobra.Command{
		Use:   "claim",
		Short: "Lease up to N queued items to an annotator",
		Long: `Claims up to --n queued items (items whose lease expired count as queued) for
--annotator, for --lease. Prints the claim id and the claimed item ids:

  claim=<id> items=<k> lease_until=<UTC time>
  <item id> window=<window id> cluster=<cluster>
  ...

Pass the claim id to export --claim, queue complete and queue release. Not
completed by lease_until, the items return to the queue and may be claimed
by someone else; completing them is then refused.

Concurrent claimers (other terminals, other machines) never get the same
item: each claim is recorded with the server's clock, and after --settle
the earliest claim of an item wins; a claimer that loses some items gets
fewer than --n (it tries once more with other items). So claim returns after
about --settle, or twice that under contention, and may return fewer items
than asked, or none when the queue is empty.

Exit codes: 0 ok (also when nothing was left to claim), 1 failure,
2 bad flags.`,
		Example: `  dpinstruct queue claim --n 50 --annotator alice
  dpinstruct queue claim --n 20 --annotator bob --lease 2h --clickhouse clickhouse://default@127.0.0.1:19000/dpinstruct`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case n <= 0:
				return usageError{fmt.Errorf("--n must be positive")}
			case strings.TrimSpace(annotator) == "":
				return usageError{fmt.Errorf("--annotator is required")}
			case settle <= time.Second:
				return usageError{fmt.Errorf("--settle must exceed 1s (ClickHouse orders claims by a seconds clock)")}
			case lease < settle+2*time.Second:
				return usageError{fmt.Errorf("--lease must be at least --settle + 2s")}
			}
			ch, err := openQueueSink(cmd, dsn)
			if err != nil {
				return err
			}
			defer ch.Close()
			if fill {
				if _, err := ch.Enqueue(cmd.Context()); err != nil {
					return err
				}
			}
			res, err := ch.Claim(cmd.Context(), sink.ClaimRequest{Annotator: annotator, N: n, Lease: lease, Settle: settle})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			until := "-"
			if !res.LeaseUntil.IsZero() {
				until = res.LeaseUntil.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(out, "claim=%s items=%d lease_until=%s\n", res.ClaimID, len(res.Items), until)
			for _, it := range res.Items {
				fmt.Fprintf(out, "%s window=%s cluster=%d\n", it.ItemID, it.WindowID, it.Cluster)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&n, "n", 0, "number of items to claim (required)")
	f.StringVar(&annotator, "annotator", "", "who annotates the items (required)")
	f.DurationVar(&lease, "lease", 30*time.Minute, "how long the items are held before they return to the queue")
	f.DurationVar(&settle, "settle", sink.DefaultClaimSettle, "wait before reading concurrent claims back; must exceed 1s")
	f.BoolVar(&fill, "fill", true, "queue newly released instructions first (as queue fill)")
	f.StringVar(&dsn, "clickhouse", "", clickhouseFlagHelp)
	return cmd
}

// leaseCmd builds queue complete and queue release.
func leaseCmd(use, short, long, example string, op func(*sink.Client, *cobra.Command, string, []string) (sink.LeaseResult, error)) *cobra.Command {
	var (
		dsn, claim string
		items      []string
	)
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    long,
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(claim) == "" {
				return usageError{fmt.Errorf("--claim is required (the id queue claim printed)")}
			}
			ch, err := openQueueSink(cmd, dsn)
			if err != nil {
				return err
			}
			defer ch.Close()
			res, err := op(ch, cmd, claim, items)
			for _, line := range res.RefusalLines() {
				fmt.Fprintln(cmd.ErrOrStderr(), "refused", line)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d items, refused %d\n", strings.TrimSuffix(use, "e")+"ed", len(res.Done), len(res.Refused))
			if errors.Is(err, sink.ErrNotLeaseHolder) {
				return fmt.Errorf("%d items refused: claim %s does not hold their lease", len(res.Refused), claim)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&claim, "claim", "", "the claim id queue claim printed (required)")
	f.StringSliceVar(&items, "item", nil, "item ids (repeat or comma-separate; default: every item the claim holds)")
	f.StringVar(&dsn, "clickhouse", "", clickhouseFlagHelp)
	return cmd
}

func newQueueCompleteCmd() *cobra.Command {
	return leaseCmd("complete", "Mark claimed items done",
		`Marks items done for the claim that holds them: all the claim still holds, or
only the --item ids. Only the current lease holder may complete an item:
items whose lease expired (and may have been claimed by someone else), that
another claim holds, or that are already done are refused, listed on stderr
as "refused <item>: <reason>", and the exit code is 1. The lease is checked
with the server's clock when the completion is recorded, so a completion
and a new claim after expiry can never both succeed.

dpinstruct import also marks the items it imports done.`,
		`  dpinstruct queue complete --claim c0123456789abcdef01234567
  dpinstruct queue complete --claim c0123456789abcdef01234567 --item w-17-3 --item w-17-4`,
		func(ch *sink.Client, cmd *cobra.Command, claim string, items []string) (sink.LeaseResult, error) {
			return ch.Complete(cmd.Context(), claim, items)
		})
}

func newQueueReleaseCmd() *cobra.Command {
	return leaseCmd("release", "Give claimed items back to the queue",
		`Returns items to the queue before their lease ends, so others can claim them
at once: all the claim holds, or only the --item ids. Same rules as queue
complete: only the lease holder may release.`,
		`  dpinstruct queue release --claim c0123456789abcdef01234567`,
		func(ch *sink.Client, cmd *cobra.Command, claim string, items []string) (sink.LeaseResult, error) {
			return ch.Release(cmd.Context(), claim, items)
		})
}

func newQueueProgressCmd() *cobra.Command {
	var dsn string
	cmd := &cobra.Command{
		Use:   "progress",
		Short: "Count queue items by status",
		Long: `Prints how many items are queued, claimed and done (the annotation_progress
view; an expired lease counts as queued):

  queued=<n> claimed=<n> done=<n> total=<n>`,
		Example: `  dpinstruct queue progress`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ch, err := openQueueSink(cmd, dsn)
			if err != nil {
				return err
			}
			defer ch.Close()
			p, err := ch.Progress(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "queued=%d claimed=%d done=%d total=%d\n", p.Queued, p.Claimed, p.Done, p.Total())
			return nil
		},
	}
	cmd.Flags().StringVar(&dsn, "clickhouse", "", clickhouseFlagHelp)
	return cmd
}
