package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/models/pretrain"
)

func newPretrainCmd() *cobra.Command {
	var opts pretrain.Options
	var caps map[string]string
	cmd := &cobra.Command{
		Use:   "pretrain",
		Short: "Train the public base generator (tokenizer + language model) on public text",
		Long: `Trains a byte-level BPE tokenizer and a small decoder-only transformer on public
text only, and writes them to one model folder (config.json, model.safetensors,
tokenizer.json, pretrain.json). Paths under a dolly/ folder are refused: Dolly
stands in for private data and must never train the base model.

The run checkpoints every --checkpoint-every steps and on Ctrl-C; running the
same command again resumes from the last checkpoint (same tokenizer, weights,
Adam state and data order). --steps counts all steps, earlier runs included.

Corpus formats: *.jsonl and *.jsonl.gz (field "text"), *.txt (one text per
paragraph). Directories are read recursively.

--cap limits one source's share of the training tokens (a red-team set at 5%,
say): the run logs every source's texts, tokens and share, and pretrain.json
records them. Texts longer than the context are cut and train no end-of-text
target. --max-time gives every setting of a comparison the same compute; the
held-out line reports bits per character too, which, unlike perplexity per
token, compares models with different tokenizers.`,
		Example: `  # a first model on all public text (the shipped one is made by make base-model,
  # which runs this and then continues on the prompt sets alone, see docs/MODELS.md):
  dpinstruct pretrain --out .dpinstruct/base-model \
      --corpus ../shared/data/public/oasst1-turkunlp/train_messages.jsonl.gz \
      --corpus ../shared/data/public/hh-rlhf --corpus ../shared/data/public/self-instruct \
      --held-out ../shared/data/public/fastchat --steps 2400`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(opts.Corpus) == 0 || opts.Out == "" {
				return usageError{errors.New("--corpus and --out are required")}
			}
			if len(caps) > 0 {
				opts.Caps = map[string]float64{}
				for path, share := range caps {
					v, err := strconv.ParseFloat(share, 64)
					if err != nil {
						return usageError{fmt.Errorf("--cap %s=%s: the share must be a number such as 0.05", path, share)}
					}
					opts.Caps[path] = v
				}
			}
			bar := newProgressBar(cmd.ErrOrStderr(), int64(opts.Steps), "pretraining",
				progressbar.OptionShowElapsedTimeOnFinish())
			opts.Progress = func(step, steps int, loss float32) {
				bar.Describe(fmt.Sprintf("pretraining (loss %.3f)", loss))
				_ = bar.Set(step)
			}
			opts.Log = func(format string, args ...any) {
				_ = bar.Clear()
				fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...)
			}
			res, err := pretrain.Run(cmd.Context(), opts)
			_ = bar.Finish()
			fmt.Fprintln(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "model: %s (%d parameters, vocab %d)\n", opts.Out, res.Params, res.TokenizerVocab)
			fmt.Fprintf(out, "trained: %d steps on %d texts (%d tokens), %s in all, %.0f tokens/s this run\n",
				res.Steps, res.TrainTexts, res.TrainTokens, res.Elapsed.Round(time.Second), res.TokensPerSec)
			if !math.IsNaN(res.HeldOutPPL) {
				fmt.Fprintf(out, "held-out perplexity: %.2f on %d texts (%.3f bits per character)\n", res.HeldOutPPL, res.HeldOutTexts, res.HeldOutBitsPerChar)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&opts.Corpus, "corpus", nil, "public text: files or directories (repeatable)")
	f.StringSliceVar(&opts.HeldOut, "held-out", nil, "public text kept out of training, for the held-out perplexity (repeatable)")
	f.StringVar(&opts.Out, "out", "", "model folder to write (and resume from)")
	f.IntVar(&opts.VocabSize, "vocab", 4096, "tokenizer vocabulary size (when the folder has no tokenizer yet)")
	f.IntVar(&opts.Context, "context", 64, "context length in tokens")
	f.IntVar(&opts.Layers, "layers", 4, "transformer layers")
	f.IntVar(&opts.Width, "width", 192, "model width (d_model)")
	f.IntVar(&opts.Heads, "heads", 4, "attention heads")
	f.IntVar(&opts.Steps, "steps", 1000, "total training steps, earlier runs included")
	f.IntVar(&opts.BatchSize, "batch", 32, "sequences per step")
	f.Float64Var(&opts.LearningRate, "lr", 1e-3, "Adam learning rate")
	f.IntVar(&opts.CheckpointEvery, "checkpoint-every", 100, "save the folder every this many steps")
	f.Uint64Var(&opts.Seed, "seed", 1, "seed for initialisation and data order")
	f.StringToStringVar(&caps, "cap", nil, "PATH=SHARE: at most this share (0-1) of the training tokens from the --corpus PATH (as given); a seeded subset of its texts is kept (repeatable)")
	f.DurationVar(&opts.MaxTime, "max-time", 0, "stop (with a checkpoint) after this much training time, e.g. 10m: a fixed budget for comparing settings; 0 = no limit")
	f.StringVar(&opts.Backend, "backend", os.Getenv("DPINSTRUCT_BACKEND"), backendHelp)
	return cmd
}
