package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/models/base"
	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/pretrain"
	"github.com/dpinstruct/dpinstruct/models/synth"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// backendHelp documents --backend for every command that runs a model.
const backendHelp = `compute backend: "go" (pure Go, the default), "go:<config>", or "xla:<plugin>" ` +
	`(e.g. xla:cuda; only in binaries built with -tags xla; $DPINSTRUCT_BACKEND)`

func newGenerateCmd() *cobra.Command {
	var (
		modelDir string
		outPath  string
		n        int
		opts     lm.SampleOptions
		backend  string
	)
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Sample synthetic instructions from a model folder (default: the shipped base model)",
		Long: `Samples instructions from a model folder written by pretrain (or by the DP
fine-tuning of a window) and writes them as JSON lines, {"text": ...}, to
stdout or --out. Sampling starts from an empty prompt and stops at the
end-of-text token or --max-tokens. Exact duplicates and empty samples are
dropped (and counted) and sampling continues until N distinct instructions
are written, or 20*N have been drawn.

Without --model it uses the base model shipped inside this binary, trained on
public data only (docs/MODELS.md).`,
		Example: `  dpinstruct generate --n 20
  dpinstruct generate --model out/window-7 --n 1000 --top-p 0.95 --seed 7 --out synthetic.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 {
				return usageError{errors.New("--n must be at least 1")}
			}
			dir, tok, cleanup, err := openModelFolder(modelDir)
			if err != nil {
				return err
			}
			defer cleanup()
			m, err := loadModel(dir, backend)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if outPath != "" {
				f, err := os.Create(outPath)
				if err != nil {
					return usageError{fmt.Errorf("--out: %w", err)}
				}
				defer f.Close()
				out = f
			}
			w := bufio.NewWriter(out)
			defer w.Flush()

			bar := newProgressBar(cmd.ErrOrStderr(), int64(n), "sampling", progressbar.OptionClearOnFinish())
			texts, st, err := synth.Sample(cmd.Context(), m, tok, n, synth.Options{
				SampleOptions: opts,
				Progress:      func(k int) { _ = bar.Add(k) },
			})
			if err != nil {
				return err
			}
			for _, text := range texts {
				line, _ := json.Marshal(struct {
					Text string `json:"text"`
				}{text})
				w.Write(append(line, '\n'))
			}
			_ = bar.Finish()
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d instructions; drew %d samples (%d exact duplicates and %d empty dropped), %d tokens in %s (%.0f tokens/s)\n",
				len(texts), st.Drawn, st.Duplicates, st.Empty, st.Tokens, st.Elapsed.Round(time.Millisecond), float64(st.Tokens)/st.Elapsed.Seconds())
			if len(texts) < n {
				return fmt.Errorf("only %d distinct instructions after %d samples", len(texts), st.Drawn)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelDir, "model", "", "model folder (default: the shipped base model)")
	f.IntVar(&n, "n", 10, "instructions to write")
	f.Float64Var(&opts.Temperature, "temperature", lm.DefaultTemperature, "sampling temperature (the default was chosen by MAUVE, docs/MODELS.md)")
	f.Float64Var(&opts.TopP, "top-p", lm.DefaultTopP, "nucleus sampling mass (1 disables; the default was chosen by MAUVE, docs/MODELS.md)")
	f.IntVar(&opts.TopK, "top-k", 0, "keep only the K most likely tokens (0 disables)")
	f.IntVar(&opts.MaxTokens, "max-tokens", 0, "most tokens per instruction (default: the model's context)")
	f.Uint64Var(&opts.Seed, "seed", 1, "sampling seed")
	f.IntVar(&opts.BatchSize, "batch", 64, "sequences decoded together")
	f.StringVar(&outPath, "out", "", "write JSON lines here instead of stdout")
	f.StringVar(&backend, "backend", os.Getenv("DPINSTRUCT_BACKEND"), backendHelp)
	return cmd
}

// openModelFolder resolves --model (default: the shipped base model,
// extracted) and loads its tokenizer.
func openModelFolder(modelDir string) (dir string, tok *tokenizer.Tokenizer, cleanup func(), err error) {
	dir, cleanup, err = base.Folder(modelDir)
	if err != nil {
		return "", nil, nil, usageError{fmt.Errorf("--model: %w", err)}
	}
	tok, err = tokenizer.Load(filepath.Join(dir, pretrain.TokenizerFile))
	if err != nil {
		cleanup()
		return "", nil, nil, err
	}
	return dir, tok, cleanup, nil
}

// loadModel loads the model folder on the --backend the user named.
func loadModel(dir, backend string) (*lm.Model, error) {
	be, err := lm.BackendFromName(backend)
	if err != nil {
		return nil, usageError{fmt.Errorf("--backend: %w", err)}
	}
	return lm.Load(dir, lm.WithBackend(be))
}
