// Package pretrain trains the public base generator: a byte-level BPE
// tokenizer and a small decoder-only language model, on public text only.
// It is what `dpinstruct pretrain` runs. Everything it reads goes through
// models/corpus, which refuses the private (Dolly) data.
//
// A run writes one model folder (models/lm's config.json and
// model.safetensors, plus tokenizer.json and pretrain.json) and checkpoints
// it every CheckpointEvery steps, so an interrupted run resumes where it
// stopped: the tokenizer is reused, the model and its Adam state are
// reloaded, and the data order, a function of Seed and the step number, is
// the same.
package pretrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	"github.com/dpinstruct/dpinstruct/models/corpus"
	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// TokenizerFile is the tokenizer's name inside a model folder.
const TokenizerFile = "tokenizer.json"

// StateFile records the run's settings and progress in the model folder.
const StateFile = "pretrain.json"

// Options configure a run. Zero values take the defaults noted.
type Options struct {
	// Corpus: files or directories of public text (see models/corpus).
	Corpus []string
	// HeldOut: files or directories kept out of training and used for the
	// held-out perplexity. May be empty.
	HeldOut []string
	// Out is the model folder.
	Out string
	// VocabSize of a newly trained tokenizer (default 4096).
	VocabSize int
	// Model shape (defaults: context 64, 4 layers, width 192, 4 heads).
	Context, Layers, Width, Heads int
	// Steps in total, counting those of earlier runs in Out (default 1000).
	Steps int
	// BatchSize sequences per step (default 32).
	BatchSize int
	// LearningRate for Adam, constant (default 1e-3).
	LearningRate float64
	// CheckpointEvery steps the folder is saved (default 100).
	CheckpointEvery int
	// Seed fixes initialisation and data order (default 1).
	Seed uint64
	// Caps limits a source's share of the training tokens: a --corpus path
	// (as given in Corpus) to a share in (0, 1). A capped source keeps a
	// seeded random subset of its texts (see applyCaps); the others are
	// kept whole. The shares are recorded in pretrain.json.
	Caps map[string]float64
	// MaxTime, when > 0, ends the run (with a checkpoint, as at the last
	// step) once this much training time has passed in this call: a fixed
	// compute budget for comparing settings. Result.Steps tells how far it
	// got; running again with a larger MaxTime continues.
	MaxTime time.Duration
	// Backend names the compute backend (lm.BackendFromName; default "go").
	Backend string
	// Progress, if set, is called after every step.
	Progress func(step, steps int, loss float32)
	// Log, if set, receives one line per checkpoint or notable event.
	Log func(format string, args ...any)
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.VocabSize, tokenizer.DefaultVocabSize)
	def(&o.Context, 64)
	def(&o.Layers, 4)
	def(&o.Width, 192)
	def(&o.Heads, 4)
	def(&o.Steps, 1000)
	def(&o.BatchSize, 32)
	def(&o.CheckpointEvery, 100)
	if o.LearningRate == 0 {
		o.LearningRate = 1e-3
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	return o
}

// Result summarises a run.
type Result struct {
	Steps        int
	Params       int
	TrainTexts   int
	TrainTokens  int64
	HeldOutTexts int
	HeldOutPPL   float64 // exp(mean next-token loss), NaN without held-out data
	// HeldOutBitsPerChar is the same loss per character of the scored
	// text: comparable across tokenizers, where perplexity per token is not.
	HeldOutBitsPerChar float64
	Elapsed            time.Duration
	TokensPerSec       float64 // training tokens (non-pad targets) per second
	ResumedAtStep      int
	TokenizerVocab     int
}

// State is pretrain.json: how the folder was made, so docs/MODELS.md can
// quote it and a resumed run can check it is continuing the same run.
type State struct {
	Corpus             []string  `json:"corpus"`
	Sources            []Source  `json:"sources,omitempty"`
	HeldOut            []string  `json:"held_out"`
	Steps              int       `json:"steps_done"`
	StepsPlanned       int       `json:"steps_planned"`
	BatchSize          int       `json:"batch_size"`
	LearningRate       float64   `json:"learning_rate"`
	Seed               uint64    `json:"seed"`
	TrainSeconds       float64   `json:"train_seconds"`
	HeldOutPPL         float64   `json:"held_out_perplexity,omitempty"`
	HeldOutBitsPerChar float64   `json:"held_out_bits_per_char,omitempty"`
	Updated            time.Time `json:"updated"`
}

// Run trains (or resumes) the model folder opts.Out.
func Run(ctx context.Context, opts Options) (Result, error) {
	opts = opts.withDefaults()
	if opts.Out == "" {
		return Result{}, errors.New("pretrain: an output folder is required")
	}
	if len(opts.Corpus) == 0 {
		return Result{}, errors.New("pretrain: at least one corpus path is required")
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return Result{}, fmt.Errorf("pretrain: %w", err)
	}
	train, err := corpus.Open(opts.Corpus...)
	if err != nil {
		return Result{}, fmt.Errorf("pretrain: corpus: %w", err)
	}
	var held *corpus.Reader
	if len(opts.HeldOut) > 0 {
		if held, err = corpus.Open(opts.HeldOut...); err != nil {
			return Result{}, fmt.Errorf("pretrain: held-out: %w", err)
		}
	}

	tok, err := loadOrTrainTokenizer(ctx, opts, train)
	if err != nil {
		return Result{}, err
	}
	srcs, err := encodeSources(ctx, opts.Corpus, tok, opts.Context)
	if err != nil {
		return Result{}, err
	}
	if err := applyCaps(srcs, opts.Caps, opts.Seed); err != nil {
		return Result{}, err
	}
	var seqs [][]int32
	var ntok int64
	sources := make([]Source, len(srcs))
	for i, s := range srcs {
		seqs = append(seqs, s.seqs...)
		ntok += s.KeptTokens
		sources[i] = s.Source
		capNote := ""
		if s.Capped {
			capNote = fmt.Sprintf(" (capped at %.0f%%: %d of %d texts)", 100*s.Cap, s.KeptTexts, s.Texts)
		}
		opts.Log("source %s: %d texts, %d tokens, %.1f%% of the training tokens%s", s.Path, s.KeptTexts, s.KeptTokens, 100*s.Share, capNote)
	}
	if len(seqs) == 0 {
		return Result{}, errors.New("pretrain: the corpus holds no text")
	}
	opts.Log("corpus: %d texts, %d tokens (cut to %d positions)", len(seqs), ntok, opts.Context)

	m, err := loadOrNewModel(opts, tok)
	if err != nil {
		return Result{}, err
	}
	trainer, err := m.NewTrainer(lm.TrainerOptions{LearningRate: opts.LearningRate, BatchSize: opts.BatchSize})
	if err != nil {
		return Result{}, err
	}
	res := Result{TrainTexts: len(seqs), TrainTokens: ntok, TokenizerVocab: tok.VocabSize()}
	res.Params, _ = m.NumParams()
	state := readState(opts.Out)
	start := int(trainer.Steps())
	res.ResumedAtStep = start
	if start > 0 {
		opts.Log("resuming at step %d of %d", start, opts.Steps)
	}

	order := newOrder(len(seqs), opts.Seed)
	began, runStart := time.Now(), time.Now()
	var trainedTokens int64
	save := func(step int) error {
		if err := m.Save(opts.Out); err != nil {
			return err
		}
		state = State{Corpus: opts.Corpus, Sources: sources, HeldOut: opts.HeldOut, Steps: step, StepsPlanned: opts.Steps,
			BatchSize: opts.BatchSize, LearningRate: opts.LearningRate, Seed: opts.Seed,
			TrainSeconds: state.TrainSeconds + time.Since(began).Seconds(), Updated: time.Now().UTC()}
		began = time.Now()
		return writeState(opts.Out, state)
	}
	end := opts.Steps
	for step := start; step < end; step++ {
		if opts.MaxTime > 0 && time.Since(runStart) >= opts.MaxTime {
			if err := save(step); err != nil {
				return res, err
			}
			opts.Log("time budget of %s spent at step %d; checkpoint saved", opts.MaxTime, step)
			end = step
			break
		}
		if err := ctx.Err(); err != nil {
			if serr := save(step); serr != nil {
				return res, serr
			}
			opts.Log("interrupted at step %d; checkpoint saved, run again to resume", step)
			return res, err
		}
		batch := make([][]int32, opts.BatchSize)
		for i := range batch {
			batch[i] = seqs[order.at(step*opts.BatchSize+i)]
			trainedTokens += int64(min(len(batch[i])+1, opts.Context))
		}
		loss, err := trainer.Step(batch)
		if err != nil {
			return res, fmt.Errorf("pretrain: step %d: %w", step, err)
		}
		if opts.Progress != nil {
			opts.Progress(step+1, opts.Steps, loss)
		}
		if (step+1)%opts.CheckpointEvery == 0 || step+1 == opts.Steps {
			if err := save(step + 1); err != nil {
				return res, err
			}
			opts.Log("step %d/%d loss %.3f: checkpoint saved", step+1, opts.Steps, loss)
		}
	}
	res.Steps = end
	res.Elapsed = time.Duration(state.TrainSeconds * float64(time.Second))
	if start < end {
		res.TokensPerSec = float64(trainedTokens) / time.Since(runStart).Seconds()
	}
	res.HeldOutPPL = math.NaN()
	if held != nil {
		hseqs, _, err := encodeAll(ctx, held, tok, opts.Context)
		if err != nil {
			return res, err
		}
		res.HeldOutTexts = len(hseqs)
		if res.HeldOutPPL, err = Perplexity(m, hseqs, opts.BatchSize); err != nil {
			return res, err
		}
		res.HeldOutBitsPerChar = BitsPerChar(res.HeldOutPPL, hseqs, tok, opts.Context)
		state.HeldOutPPL, state.HeldOutBitsPerChar = res.HeldOutPPL, res.HeldOutBitsPerChar
		if err := writeState(opts.Out, state); err != nil {
			return res, err
		}
	}
	return res, nil
}

func loadOrTrainTokenizer(ctx context.Context, opts Options, train *corpus.Reader) (*tokenizer.Tokenizer, error) {
	path := filepath.Join(opts.Out, TokenizerFile)
	if _, err := os.Stat(path); err == nil {
		tok, err := tokenizer.Load(path)
		if err != nil {
			return nil, fmt.Errorf("pretrain: %w", err)
		}
		opts.Log("using the tokenizer in %s (%d tokens)", path, tok.VocabSize())
		return tok, nil
	}
	t0 := time.Now()
	tok, err := tokenizer.Train(ctx, train.Texts(ctx), tokenizer.TrainOptions{VocabSize: opts.VocabSize})
	if err != nil {
		return nil, fmt.Errorf("pretrain: tokenizer: %w", err)
	}
	if err := tok.Save(path); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	opts.Log("trained a %d-token tokenizer in %s", tok.VocabSize(), time.Since(t0).Round(time.Millisecond))
	return tok, nil
}

func loadOrNewModel(opts Options, tok *tokenizer.Tokenizer) (*lm.Model, error) {
	backend, err := lm.BackendFromName(opts.Backend)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	if _, err := os.Stat(filepath.Join(opts.Out, lm.ConfigFile)); err == nil {
		m, err := lm.Load(opts.Out, lm.WithBackend(backend))
		if err != nil {
			return nil, fmt.Errorf("pretrain: resume: %w", err)
		}
		if m.Config().VocabSize != tok.VocabSize() || m.Config().EOS != tok.EOS() {
			return nil, fmt.Errorf("pretrain: %s does not match its tokenizer (vocab %d vs %d)", opts.Out, m.Config().VocabSize, tok.VocabSize())
		}
		return m, nil
	}
	cfg := lm.DefaultConfig(tok.VocabSize(), tok.EOS())
	cfg.Context, cfg.Layers, cfg.Width, cfg.Heads = opts.Context, opts.Layers, opts.Width, opts.Heads
	return lm.New(cfg, opts.Seed, lm.WithBackend(backend))
}

// encodeAll tokenizes every text, keeping at most context tokens. The model
// sees BOS first, so a text of up to context-1 tokens also trains its
// end-of-text target; a longer one fills the row with its own tokens and
// trains no end-of-text target, because it does not end there (lm.PackBatch
// adds the target only when the text fits). Cutting every text to
// context-1 would teach the model that long texts end mid-sentence.
func encodeAll(ctx context.Context, r *corpus.Reader, tok *tokenizer.Tokenizer, context int) ([][]int32, int64, error) {
	var out [][]int32
	var n int64
	for text, err := range r.Texts(ctx) {
		if err != nil {
			return nil, 0, fmt.Errorf("pretrain: reading corpus: %w", err)
		}
		ids := tok.Encode(text)
		if len(ids) > context {
			ids = ids[:context]
		}
		out = append(out, ids)
		n += int64(len(ids))
	}
	return out, n, nil
}

// Perplexity is exp of the mean next-token loss of m over seqs (each
// scored as BOS, tokens, EOS, truncated to the model's context).
func Perplexity(m *lm.Model, seqs [][]int32, batch int) (float64, error) {
	cfg := m.Config()
	var nll float64
	var count int64
	for i := 0; i < len(seqs); i += batch {
		rows := seqs[i:min(i+batch, len(seqs))]
		in := make([][]int32, len(rows))
		for b, s := range rows {
			r := make([]int32, cfg.Context)
			for t := range r {
				r[t] = cfg.EOS
			}
			for t := 1; t < cfg.Context && t-1 < len(s); t++ {
				r[t] = s[t-1]
			}
			in[b] = r
		}
		logits, err := m.LogitsFor(in)
		if err != nil {
			return 0, err
		}
		for b, s := range rows {
			for t := 0; t < cfg.Context && t <= len(s); t++ {
				target := cfg.EOS
				if t < len(s) {
					target = s[t]
				}
				nll -= logSoftmaxAt(logits[b][t], target)
				count++
			}
		}
	}
	if count == 0 {
		return math.NaN(), nil
	}
	return math.Exp(nll / float64(count)), nil
}

// BitsPerChar turns Perplexity's result over seqs into bits per character:
// the total loss (ln ppl for each scored position: every kept token, and the
// end-of-text of a text that fits) over the characters of the scored text.
func BitsPerChar(ppl float64, seqs [][]int32, tok *tokenizer.Tokenizer, context int) float64 {
	var positions, chars int64
	for _, s := range seqs {
		positions += int64(min(len(s)+1, context))
		chars += int64(utf8.RuneCountInString(tok.Decode(s)))
	}
	if chars == 0 {
		return math.NaN()
	}
	return math.Log2(ppl) * float64(positions) / float64(chars)
}

func logSoftmaxAt(logits []float32, target int32) float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	return float64(logits[target]) - mx - math.Log(sum)
}

// order is a seeded permutation per epoch, so step k always sees the same
// texts, whether or not the run was resumed.
type order struct {
	n    int
	seed uint64
	perm map[int][]int
}

func newOrder(n int, seed uint64) *order { return &order{n: n, seed: seed, perm: map[int][]int{}} }

func (o *order) at(i int) int {
	epoch := i / o.n
	p, ok := o.perm[epoch]
	if !ok {
		p = rand.New(rand.NewPCG(o.seed, uint64(epoch))).Perm(o.n)
		o.perm = map[int][]int{epoch: p}
	}
	return p[i%o.n]
}

func readState(dir string) State {
	var s State
	raw, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err == nil {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

func writeState(dir string, s State) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, StateFile+".tmp")
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, StateFile))
}
