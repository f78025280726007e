package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dpinstruct/dpinstruct/models/base"
	"github.com/dpinstruct/dpinstruct/models/dpwindow"
	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
	"github.com/dpinstruct/dpinstruct/sink"
	"github.com/dpinstruct/dpinstruct/stream"
)

// DPProcessor is the method on a window: plan the spend (SpendPlanner),
// DP fine-tune LoRA adapters on the public base generator, sample a pool,
// DP-filter it, and return the selection. It reads record text, so it must
// only ever return what dpwindow.Run returns: DP outputs and public data.
type DPProcessor struct {
	cfg ProcessorConfig
	// plans keeps each window's plan from PlanSpend, so Process runs
	// exactly the mechanisms that were charged.
	plans    map[string]plannedWindow
	log      *slog.Logger
	progress StageProgress
	// unit, maxPerUser and accountant come from the privacy section.
	unit       string
	maxPerUser int
	accountant string

	// models keeps the generator (whose adapters each window resets) and
	// the embedding model from one window to the next, so their compiled
	// graphs (the decoding step among them) are built once per process;
	// modelsMu serialises the windows that use them.
	modelsMu sync.Mutex
	models   *dpModels
}

// dpModels are the models a DP window runs on, opened from one base
// folder on one backend.
type dpModels struct {
	gen, emb *lm.Model
	tok      *tokenizer.Tokenizer
}

// openModels returns the processor's models, opening them on first use.
// Call with modelsMu held.
func (p *DPProcessor) openModels() (*dpModels, error) {
	if p.models != nil {
		return p.models, nil
	}
	be, err := lm.BackendFromName(p.cfg.Backend)
	if err != nil {
		return nil, fmt.Errorf("dp processor: processor.backend: %w", err)
	}
	gen, tok, err := base.Open(p.cfg.BaseModel, lm.WithBackend(be))
	if err != nil {
		return nil, fmt.Errorf("dp processor: processor.base_model: %w", err)
	}
	ms := &dpModels{gen: gen, tok: tok}
	if p.cfg.Embedding != "lexical" {
		// The base model without adapters: the embedding must not depend
		// on any window's (private) fine-tuning.
		if ms.emb, _, err = base.Open(p.cfg.BaseModel, lm.WithBackend(be)); err != nil {
			return nil, fmt.Errorf("dp processor: processor.base_model: %w", err)
		}
	}
	p.models = ms
	return ms, nil
}

// StageProgress shows a long window stage to a person (progress bars);
// it receives stage names and counts only, never data.
type StageProgress interface {
	Stage(name string, total int)
	Advance(n int)
}

// SetProgress makes the processor report its stages to p as well as to
// the log.
func (p *DPProcessor) SetProgress(sp StageProgress) { p.progress = sp }

func newDPProcessor(cfg ProcessorConfig) Processor {
	return &DPProcessor{cfg: cfg, plans: map[string]plannedWindow{}, log: slog.Default()}
}

func (p *DPProcessor) method() dpwindow.Config {
	return dpwindow.Config{Unit: p.unit, MaxPerUser: p.maxPerUser, Accountant: p.accountant,
		ExpectedBatch: p.cfg.ExpectedBatch, Epochs: p.cfg.Epochs, Clip: p.cfg.Clip, LearningRate: p.cfg.LearningRate,
		SeqLen: p.cfg.SeqLen, HistogramSigma: p.cfg.HistogramSigma, PoolFactor: p.cfg.PoolFactor,
		OutputFactor: p.cfg.OutputFactor, Clusters: p.cfg.Clusters,
	}
}

// Describe implements Describer.
func (p *DPProcessor) Describe() (string, string) {
	return "dp", fmt.Sprintf(`{"expected_batch":%d,"epochs":%g,"histogram_sigma":%g,"pool_factor":%g,"embedding":%q,"unit":%q,"backend":%q}`,
		p.cfg.ExpectedBatch, p.cfg.Epochs, p.cfg.HistogramSigma, p.cfg.PoolFactor, p.cfg.Embedding, p.unit, p.cfg.Backend)
}

// plannedWindow is a plan and, at user level, the window's records, read
// once to count users so Process need not read the window again.
type plannedWindow struct {
	plan         dpwindow.Plan
	texts, users []string
}

// PlanSpend implements SpendPlanner: the noise is calibrated from the
// window's record count (metadata) so that DP-SGD and the filter's
// histogram together meet the target.
func (p *DPProcessor) PlanSpend(w *Window, target Spend) (Spend, error) {
	n := int(w.Records)
	var pw plannedWindow
	if p.unit == "user" {
		// The number of users comes from the records' user ids (message
		// keys by default): stream metadata, like the record count.
		var err error
		if pw.texts, pw.users, err = readWindow(w); err != nil {
			return Spend{}, err
		}
		n = dpwindow.DistinctUsers(pw.users)
	}
	plan, err := dpwindow.MakePlan(p.method(), n, target.Epsilon, target.Delta)
	if err != nil {
		return Spend{}, err
	}
	pw.plan = plan
	p.plans[w.ID] = pw
	return Spend{Epsilon: plan.Epsilon, Delta: plan.Delta, Mechanism: dpMechanism, Params: plan.JSON()}, nil
}

// Process implements Processor.
func (p *DPProcessor) Process(ctx context.Context, w *Window) (*Result, error) {
	pw, ok := p.plans[w.ID]
	if !ok {
		return nil, fmt.Errorf("dp processor: window %s was not planned (charged) before processing", w.ID)
	}
	delete(p.plans, w.ID)
	plan, texts, users := pw.plan, pw.texts, pw.users
	if texts == nil {
		var err error
		if texts, users, err = readWindow(w); err != nil {
			return nil, err
		}
	}
	if len(texts) == 0 {
		return &Result{}, nil
	}
	p.modelsMu.Lock()
	defer p.modelsMu.Unlock()
	ms, err := p.openModels()
	if err != nil {
		return nil, err
	}
	m, tok := ms.gen, ms.tok
	embedder := func(pool []string) (embed.Embedder, error) {
		if p.cfg.Embedding == "lexical" {
			lex := embed.NewLexical(embed.LexicalOptions{})
			return lex, lex.Fit(ctx, pool) // synthetic texts only
		}
		return embed.NewModel(ms.emb, tok), nil
	}
	out, err := dpwindow.Run(ctx, m, tok, embedder, texts, users, plan, p.method(), &logProgress{log: p.log, window: w.ID, also: p.progress})
	if err != nil {
		return nil, fmt.Errorf("dp processor: window %s: %w", w.ID, err)
	}
	if p.cfg.CheckpointDir != "" {
		// The adapters are DP (post-processing of the noised gradients):
		// safe to keep, one folder per window with its provenance.
		ck := filepath.Join(p.cfg.CheckpointDir, w.ID)
		if err := m.Save(ck); err != nil {
			return nil, fmt.Errorf("dp processor: saving window %s's adapters: %w", w.ID, err)
		}
		prov, _ := json.MarshalIndent(struct {
			Window           string        `json:"window_id"`
			GeneratorVersion string        `json:"generator_version"`
			Plan             dpwindow.Plan `json:"privacy_plan"`
			SavedAt          time.Time     `json:"saved_at"`
		}{w.ID, generatorVersion, plan, time.Now().UTC()}, "", "  ")
		if err := os.WriteFile(filepath.Join(ck, checkpointProvenance), append(prov, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("dp processor: saving window %s's provenance: %w", w.ID, err)
		}
		if err := pruneCheckpoints(p.cfg.CheckpointDir, p.cfg.KeepCheckpoints); err != nil {
			// Old checkpoints are a disk-space matter, not the window's:
			// the window goes on, and the next save tries again.
			p.log.Warn("could not delete old checkpoints", "dir", p.cfg.CheckpointDir, "err", err)
		}
	}
	rows := make([]sink.Row, len(out.Texts))
	for i, t := range out.Texts {
		rows[i] = sink.Row{Seq: uint32(i), Text: t, Cluster: int32(out.Clusters[i]), GeneratorVersion: generatorVersion,
			Epsilon: plan.Epsilon, Delta: plan.Delta}
	}
	p.log.Info("window synthesised", "window", w.ID, "pool", len(out.Pool), "selected", len(rows), "short_clusters", out.Short,
		"epsilon", plan.Epsilon, "delta", plan.Delta, "sigma", plan.NoiseMultiplier, "steps", plan.Steps)
	return &Result{Rows: rows, Epsilon: plan.Epsilon, Delta: plan.Delta}, nil
}

// readWindow returns the window's texts and user ids, in order.
func readWindow(w *Window) (texts, users []string, err error) {
	for rec, err := range w.Batches() {
		if err != nil {
			return nil, nil, fmt.Errorf("dp processor: reading window %s: %w", w.ID, err)
		}
		t, err := stream.TextsOf(rec)
		if err != nil {
			return nil, nil, fmt.Errorf("dp processor: window %s: %w", w.ID, err)
		}
		u, err := stream.UsersOf(rec)
		if err != nil {
			return nil, nil, fmt.Errorf("dp processor: window %s: %w", w.ID, err)
		}
		texts, users = append(texts, t...), append(users, u...)
	}
	return texts, users, nil
}

// generatorVersion names the generator the rows came from: the shipped
// base model plus per-window DP adapters.
const generatorVersion = "base-v1+dp-lora"

// logProgress logs stage starts (counts only) and forwards to also.
type logProgress struct {
	log    *slog.Logger
	window string
	also   StageProgress
}

func (l *logProgress) Stage(name string, total int) {
	l.log.Debug("window stage", "window", l.window, "stage", name, "total", total)
	if l.also != nil {
		l.also.Stage(name, total)
	}
}

func (l *logProgress) Advance(n int) {
	if l.also != nil {
		l.also.Advance(n)
	}
}

// checkpointProvenance is the file that names a window checkpoint's window,
// generator version and privacy plan; it is written last, so a folder that
// has it is complete.
const checkpointProvenance = "window.json"

// pruneCheckpoints deletes the oldest window checkpoints in dir (folders
// holding checkpointProvenance, by its modification time, then name)
// beyond the newest keep; keep 0 keeps all. Other files and folders in dir
// are left alone.
func pruneCheckpoints(dir string, keep int) error {
	if keep <= 0 {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	type checkpoint struct {
		name    string
		savedAt time.Time
	}
	var cks []checkpoint
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		info, err := os.Stat(filepath.Join(dir, e.Name(), checkpointProvenance))
		if err != nil {
			continue // not a (complete) checkpoint
		}
		cks = append(cks, checkpoint{e.Name(), info.ModTime()})
	}
	if len(cks) <= keep {
		return nil
	}
	slices.SortFunc(cks, func(a, b checkpoint) int {
		if c := b.savedAt.Compare(a.savedAt); c != 0 {
			return c
		}
		return strings.Compare(b.name, a.name)
	})
	var errs []error
	for _, ck := range cks[keep:] {
		if err := os.RemoveAll(filepath.Join(dir, ck.name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
