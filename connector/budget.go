package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/dpinstruct/dpinstruct/sink"
)

// Budget is a privacy ledger the connector charges before a window trains:
// sink.Client (the privacy_ledger table) and sink.FileLedger implement it.
// Charge must return nil only once the charge is durable, and an error
// wrapping sink.ErrBudgetExceeded when the spend limit.Composer composes
// with it would pass limit.Epsilon (> 0).
type Budget interface {
	Charge(ctx context.Context, ch sink.Charge, limit sink.Cap) error
}

// Spend is what one processing attempt of a window may spend: its
// (Epsilon, Delta) and, for the ledger, the mechanisms that spend it and
// their parameters (JSON).
type Spend struct {
	Epsilon, Delta float64
	Mechanism      string
	Params         string
}

// SpendPlanner is implemented by a processor that can say, before it reads
// a record, which mechanisms it will run on a window to stay within the
// target and with what parameters (sampling rate, noise, steps). Only the
// window's metadata (its record count) may inform the plan. The returned
// epsilon and delta must not exceed the target's; the connector charges
// what is returned. A processor that is not a SpendPlanner is charged the
// target, under its own name and Describe parameters.
type SpendPlanner interface {
	PlanSpend(w *Window, target Spend) (Spend, error)
}

// errSpendOverrun: a processor planned or reported more than it may spend.
var errSpendOverrun = errors.New("processor spends more than the window's budget")

// planSpend asks the processor for its plan and checks it against the
// configured target.
func (c *Connector) planSpend(win *Window) (Spend, error) {
	name, params := describe(c.deps.Processor)
	target := Spend{Epsilon: c.cfg.Privacy.Epsilon, Delta: c.cfg.Privacy.Delta, Mechanism: name, Params: params}
	sp, ok := c.deps.Processor.(SpendPlanner)
	if !ok {
		return target, nil
	}
	plan, err := sp.PlanSpend(win, target)
	if err != nil {
		return Spend{}, fmt.Errorf("planning the privacy spend of window %s: %w", win.ID, err)
	}
	if !(plan.Epsilon >= 0 && plan.Epsilon <= target.Epsilon) || !(plan.Delta >= 0 && plan.Delta <= target.Delta) {
		return Spend{}, fmt.Errorf("window %s: %w: planned epsilon %g delta %g, target %g/%g",
			win.ID, errSpendOverrun, plan.Epsilon, plan.Delta, target.Epsilon, target.Delta)
	}
	if plan.Params != "" && !json.Valid([]byte(plan.Params)) {
		return Spend{}, fmt.Errorf("window %s: planned spend parameters are not JSON", win.ID)
	}
	return plan, nil
}

// charge records the attempt's spend in every configured ledger, in
// order (ClickHouse first, then the local file), with the window's ranges,
// and checks privacy.lifetime_epsilon against the spend composed per
// privacy unit (Lifetime). It returns nil only when all of them accepted: a
// charge one ledger took and another refused is left in place, which
// over-counts and so stays safe.
func (c *Connector) charge(ctx context.Context, w sink.Window, attempt string, s Spend) error {
	parts := make([]int32, 0, len(w.Ranges))
	for _, r := range w.Ranges {
		if !slices.Contains(parts, r.Partition) {
			parts = append(parts, r.Partition)
		}
	}
	ch := sink.Charge{
		Group: w.Group, WindowID: w.ID, Attempt: attempt,
		Epsilon: s.Epsilon, Delta: s.Delta, Mechanism: s.Mechanism, Params: s.Params,
		Partitions: parts, Ranges: w.Ranges,
	}
	limit := sink.Cap{Epsilon: c.cfg.Privacy.LifetimeEpsilon, Composer: Lifetime{Unit: c.cfg.Privacy.Unit}}
	for _, b := range c.deps.Budgets {
		if err := b.Charge(ctx, ch, limit); err != nil {
			if errors.Is(err, sink.ErrBudgetExceeded) {
				c.deps.Metrics.Windows.WithLabelValues("refused").Inc()
				return &BudgetError{Window: w.ID, err: err}
			}
			return fmt.Errorf("charging window %s to the privacy ledger: %w", w.ID, err)
		}
	}
	c.deps.Metrics.EpsilonCharged.Add(s.Epsilon)
	return nil
}

// BudgetError reports a window refused because its charge would pass the
// lifetime cap. Nothing of the window was trained or released and its
// offsets were not committed; `dpinstruct run` exits with code 3.
type BudgetError struct {
	Window string
	err    error
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("privacy budget exhausted: window %s was not trained or released and its offsets stay uncommitted (%v); "+
		"raise privacy.lifetime_epsilon deliberately, or stop the stream", e.Window, e.err)
}

func (e *BudgetError) Unwrap() error { return e.err }

// checkResult refuses to write a result that claims more than was charged.
func checkResult(windowID string, res *Result, charged Spend) error {
	const slack = 1e-12 // float rounding in a processor's own accounting
	if res.Epsilon > charged.Epsilon*(1+slack) || res.Delta > charged.Delta*(1+slack) ||
		math.IsNaN(res.Epsilon) || math.IsNaN(res.Delta) {
		return fmt.Errorf("window %s: %w: result claims epsilon %g delta %g, charged %g/%g; output withheld",
			windowID, errSpendOverrun, res.Epsilon, res.Delta, charged.Epsilon, charged.Delta)
	}
	return nil
}
