package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/models/audit"
	"github.com/dpinstruct/dpinstruct/models/corpus"
	"github.com/dpinstruct/dpinstruct/models/dpwindow"
	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/lm"
)

func newAuditCmd() *cobra.Command {
	var (
		background, modelDir string
		n, candidates        int
		repeats              []int
		epsilon, delta       float64
		noDP, keepDuplicates bool
		unit                 string
		epochs               float64
		seed                 uint64
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Empirical privacy audit: plant canaries in a window, train it, measure their exposure",
		Long: `Plants random secrets ("my account PIN is 493817"), each repeated 1, 10 and 100
times, among --n background instructions; runs the window method (DP
fine-tuning, sampling, the DP filter) on them; and measures for each canary its
exposure (Carlini et al. 2019: log2 of the candidates over its rank among
random secrets of the same template, by the trained generator's likelihood; at
chance about 1.44 bits, at most log2(candidates+1)) and whether its digits
appear in the sampled pool or the released output.

--no-dp runs the same window without noise, clipping, duplicate removal or
histogram noise: a reference that shows the audit can see memorisation. Never
use it on private data. --keep-duplicates trains on every copy of a repeated
text; record-level DP then only protects a text sent k times at k*epsilon. --unit user audits user-level privacy: each
canary's copies come from one user.

The background texts are read in full: use public ones (default: the Dolly
prompts in the shared data folder). The last line is
exposure_max=<bits> released=<canaries released>.`,
		Example: `  dpinstruct audit
  dpinstruct audit --no-dp
  dpinstruct audit --epsilon 8 --keep-duplicates`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 10 || candidates < 10 || len(repeats) == 0 {
				return usageError{errors.New("--n and --candidates must be >= 10 and --repeats non-empty")}
			}
			if background == "" {
				background = corpus.DollyPrompts()
			}
			texts, err := corpus.ReadVisible(cmd.Context(), background)
			if err != nil {
				return usageError{fmt.Errorf("--background: %w", err)}
			}
			if len(texts) < n {
				return usageError{fmt.Errorf("--background has %d texts, fewer than --n %d", len(texts), n)}
			}
			dir, tok, cleanup, err := openModelFolder(modelDir)
			if err != nil {
				return err
			}
			defer cleanup()
			lexical := func(pool []string) (embed.Embedder, error) {
				l := embed.NewLexical(embed.LexicalOptions{})
				return l, l.Fit(context.WithoutCancel(cmd.Context()), pool)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "audit: training a window of %d texts plus canaries (a few minutes)...\n", n)
			res, err := audit.Run(cmd.Context(), func() (*lm.Model, error) { return lm.Load(dir) }, tok, lexical, texts[:n], audit.Config{
				Repeats: repeats, Candidates: candidates, Seed: seed, Epsilon: epsilon, Delta: delta, DP: !noDP,
				Method: dpwindow.Config{ExpectedBatch: 32, Epochs: epochs, SeqLen: 16, PoolFactor: 2, Clusters: 20, KeepDuplicates: keepDuplicates, Unit: unit},
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if res.DP {
				fmt.Fprintf(out, "DP window: epsilon %.3f at delta %g (q %.4f, %d steps, sigma %.3f, histogram sigma %g)\n",
					res.Plan.Epsilon, res.Plan.Delta, res.Plan.SampleRate, res.Plan.Steps, res.Plan.NoiseMultiplier, res.Plan.HistogramSigma)
			} else {
				fmt.Fprintln(out, "NON-PRIVATE reference window (no noise, no clipping, duplicates kept): no guarantee")
			}
			fmt.Fprintf(out, "%d records, pool %d, released %d; exposure at chance %.2f bits, measurable up to %.2f bits\n",
				res.Records, res.Pool, res.Released, res.ChanceExposure, res.MaxMeasurable)
			released := 0
			for _, c := range res.Canaries {
				fmt.Fprintf(out, "canary x%-4d %-28q rank %5d  exposure %5.2f bits  in pool %-5v released %v\n",
					c.Repeats, c.Text, c.Rank, c.Exposure, c.InPool, c.Released)
				if c.Released {
					released++
				}
			}
			fmt.Fprintf(out, "exposure_max=%.2f released=%d\n", res.MaxExposure, released)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&background, "background", "", "JSON-lines texts the canaries hide among (default: the Dolly prompts)")
	f.IntVar(&n, "n", 500, "background texts in the window")
	f.IntSliceVar(&repeats, "repeats", []int{1, 10, 100}, "one canary per entry, planted that many times")
	f.IntVar(&candidates, "candidates", 2000, "random secrets each canary is ranked against")
	f.Float64Var(&epsilon, "epsilon", 4, "the window's epsilon")
	f.Float64Var(&delta, "delta", 1e-6, "the window's delta")
	f.Float64Var(&epochs, "epochs", 3, "training epochs")
	f.BoolVar(&noDP, "no-dp", false, "non-private reference (tests only; never on private data)")
	f.BoolVar(&keepDuplicates, "keep-duplicates", false, "train on every copy of repeated texts")
	f.StringVar(&unit, "unit", "record", "privacy unit: record, or user (each canary's copies come from one user, who keeps at most 4 records)")
	f.Uint64Var(&seed, "seed", 17, "picks the canaries and candidates")
	f.StringVar(&modelDir, "model", "", "base model folder (default: the shipped one)")
	return cmd
}
