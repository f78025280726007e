package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/models/corpus"
	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/eval"
	"github.com/dpinstruct/dpinstruct/models/filter"
	"github.com/dpinstruct/dpinstruct/models/textstats"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

func newEvalCmd() *cobra.Command {
	var (
		realPath, synPath, htmlPath, embedding, modelDir, backend string
		wordListPath                                              string
		seeds                                                     int
		runFilter                                                 bool
		histSigma, delta                                          float64
		clusters, output                                          int
		filterSeed                                                uint64
	)
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Compare synthetic instructions with real ones: MAUVE, lengths, distinct-n, spelling, leakage, HTML report",
		Long: `Measures how close a synthetic instruction set is to a real one, and whether it
copied any of it. Both files are JSON lines with a "text" field.

  MAUVE (Pillutla et al. 2021): both sets are embedded, L2-normalised,
  reduced by PCA (90% of variance) and clustered by k-means; MAUVE compares
  the two cluster histograms (1 = same distribution, near 0 = disjoint). It
  varies with the k-means seed, so it is the mean (and std) over --seeds
  seeds. The frontier integral is printed too (0 = same, lower is closer).
  Length statistics and distinct-1..4 (share of distinct n-grams) of both.
  Spelling: the share of texts whose every word is in a word list, and the
  share of words in it (a word is a run of letters, apostrophes inside it
  allowed, lower-cased; "dog's" counts when "dog" is listed, and single
  letters always count). The list is --wordlist, by default Debian's
  /usr/share/dict/american-english-large (apt-get install wamerican-large);
  without it the report says "no word list" and goes on.
  Harmful-request screen: the share of texts containing one of a fixed list
  of words (kill, weapon, steal, hack into, ...; docs/MODELS.md lists them),
  a crude measure of red-team-like requests that over- and under-matches.
  Leakage: synthetic texts equal to a real text, or sharing a run of >= 8
  tokens with one.

With --filter it also runs the DP filter on the synthetic set against the
real one (clusters fitted on the synthetic set, the real texts' histogram
with noise --histogram-sigma) and measures the selection again, so the
report shows the cluster histograms before and after the filter.

This command reads the real texts in full: run it only on data you are
allowed to see (public sets, the demo's data). The connector never runs it
on a private window. The last line is mauve=<mean>.`,
		Example: `  dpinstruct generate --n 2000 --out synthetic.jsonl
  dpinstruct eval --real ../shared/data/dolly/prompts.jsonl --synthetic synthetic.jsonl --html report.html
  dpinstruct eval --real real.jsonl --synthetic pool.jsonl --filter --histogram-sigma 5 --embedding lexical`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if realPath == "" || synPath == "" {
				return usageError{errors.New("--real and --synthetic are required")}
			}
			if seeds < 1 {
				return usageError{errors.New("--seeds must be >= 1")}
			}
			if histSigma < 0 || delta <= 0 || delta >= 1 {
				return usageError{errors.New("--histogram-sigma must be >= 0 and --delta in (0, 1)")}
			}
			ctx := cmd.Context()
			words, err := loadWordList(cmd, wordListPath)
			if err != nil {
				return err
			}
			real, err := readTexts(cmd, realPath)
			if err != nil {
				return err
			}
			syn, err := readTexts(cmd, synPath)
			if err != nil {
				return err
			}
			dir, tok, cleanup, err := openModelFolder(modelDir)
			if err != nil {
				return err
			}
			defer cleanup()
			var emb embed.Embedder
			switch embedding {
			case "lexical":
				lex := embed.NewLexical(embed.LexicalOptions{})
				// Eval data is visible: IDF may be fitted on both sets.
				if err := lex.Fit(ctx, append(append([]string(nil), real...), syn...)); err != nil {
					return err
				}
				emb = lex
			case "model":
				m, err := loadModel(dir, backend)
				if err != nil {
					return err
				}
				emb = embed.NewModel(m, tok)
			default:
				return usageError{fmt.Errorf("--embedding must be model or lexical, not %q", embedding)}
			}
			opts := eval.Options{
				Embedder: emb,
				Tokenize: tokenStrings(tok),
				WordList: words,
				Progress: func(stage string) { fmt.Fprintf(cmd.ErrOrStderr(), "eval: %s...\n", stage) },
			}
			for s := range seeds {
				opts.Seeds = append(opts.Seeds, uint64(s+1))
			}
			if runFilter {
				opts.Filter = &eval.FilterOptions{Options: filter.Options{
					Clusters: clusters, HistogramSigma: histSigma, Output: output, Seed: filterSeed,
				}, Delta: delta}
			}
			rep, err := eval.Run(ctx, real, syn, opts)
			if err != nil {
				return err
			}
			if htmlPath != "" {
				f, err := os.OpenFile(htmlPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
				if err != nil {
					return usageError{fmt.Errorf("--html: %w", err)}
				}
				if err := eval.WriteHTML(f, rep); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "eval: wrote %s (open it in a browser; no server needed)\n", htmlPath)
			}
			eval.WriteText(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&realPath, "real", "", "real instructions, JSON lines with a text field")
	f.StringVar(&synPath, "synthetic", "", "synthetic instructions, JSON lines with a text field")
	f.StringVar(&embedding, "embedding", "model", "features: model (mean-pooled hidden states of the base model) or lexical (hashed n-gram TF-IDF, fast)")
	f.IntVar(&seeds, "seeds", 5, "k-means seeds MAUVE is averaged over")
	f.StringVar(&htmlPath, "html", "", "also write a self-contained HTML report with plots here")
	f.BoolVar(&runFilter, "filter", false, "also run the DP filter on the synthetic set against the real one")
	f.Float64Var(&histSigma, "histogram-sigma", 0, "with --filter: noise std on the real cluster counts (0: exact)")
	f.Float64Var(&delta, "delta", 1e-6, "with --filter: delta at which the histogram's epsilon is reported")
	f.IntVar(&clusters, "clusters", 0, "with --filter: k-means clusters (0: pool/10, at most 1000)")
	f.IntVar(&output, "filter-output", 0, "with --filter: texts to select (0: as many as real texts)")
	f.Uint64Var(&filterSeed, "filter-seed", 1, "with --filter: clustering and selection seed")
	f.StringVar(&wordListPath, "wordlist", textstats.DefaultWordListPath, `word list for the spelling measure, one word per line ("": no spelling measure)`)
	f.StringVar(&modelDir, "model", "", "model folder for the tokenizer and the model embedding (default: the shipped base model)")
	f.StringVar(&backend, "backend", os.Getenv("DPINSTRUCT_BACKEND"), backendHelp)
	return cmd
}

// loadWordList loads the --wordlist file. Without the flag a missing
// default list only turns the spelling measure off, as does an empty path;
// a list the user named must load.
func loadWordList(cmd *cobra.Command, path string) (*textstats.WordList, error) {
	if path == "" {
		return nil, nil
	}
	w, err := textstats.LoadWordList(path)
	if err != nil && !cmd.Flags().Changed("wordlist") && errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(cmd.ErrOrStderr(), "eval: %s not found (apt-get install wamerican-large): spelling not measured\n", path)
		return nil, nil
	}
	if err != nil {
		return nil, usageError{fmt.Errorf("--wordlist: %w", err)} // err names the file
	}
	return w, nil
}

// readTexts reads the text field of every line of a JSON-lines file.
func readTexts(cmd *cobra.Command, path string) ([]string, error) {
	out, err := corpus.ReadVisible(cmd.Context(), path)
	if err != nil {
		return nil, usageError{err}
	}
	if len(out) < 2 {
		return nil, usageError{fmt.Errorf("%s: %d texts; need at least 2", path, len(out))}
	}
	return out, nil
}

// tokenStrings tokenizes with the model's BPE, for lengths and leakage in
// model tokens.
func tokenStrings(tok *tokenizer.Tokenizer) func(string) []string {
	return func(s string) []string {
		ids := tok.Encode(s)
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = strconv.Itoa(int(id))
		}
		return out
	}
}
