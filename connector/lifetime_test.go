package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/dpwindow"
	"github.com/dpinstruct/dpinstruct/models/privacy"
	"github.com/dpinstruct/dpinstruct/sink"
)

// testPlan is a dp processor charge's plan: DP-SGD and the histogram,
// with its epsilon at delta from the RDP accountant, as dpwindow states it.
func testPlan(t *testing.T, q, sigma float64, steps int, histogramSigma, delta float64, unit string) dpwindow.Plan {
	t.Helper()
	a := privacy.NewAccountant(nil, privacy.Improved)
	a.ComposeSGD(q, sigma, steps)
	if histogramSigma > 0 {
		a.ComposeGaussian(histogramSigma)
	}
	eps, _ := a.Epsilon(delta)
	if !(eps > 0) || math.IsInf(eps, 0) {
		t.Fatalf("plan q %g sigma %g steps %d: epsilon %g", q, sigma, steps, eps)
	}
	return dpwindow.Plan{SampleRate: q, Steps: steps, NoiseMultiplier: sigma, Clip: 1, HistogramSigma: histogramSigma,
		Epsilon: eps, Delta: delta, Accountant: "rdp-improved", Unit: unit}
}

// planCharge charges plan for window/attempt over ranges.
func planCharge(window, attempt string, p dpwindow.Plan, ranges ...sink.Range) sink.Charge {
	return sink.Charge{Group: "g", WindowID: window, Attempt: attempt, Epsilon: p.Epsilon, Delta: p.Delta,
		Mechanism: dpMechanism, Params: p.JSON(), Ranges: ranges}
}

func offsets(partition int32, first, last int64) sink.Range {
	return sink.Range{Topic: "t", Partition: partition, First: first, Last: last}
}

// bruteForce is the lifetime spend computed the slow way: every offset
// 0..60 of partitions 0..3 of topics t and u is a unit; its charges are
// those whose ranges hold it, or that cover every unit (no ranges, unit
// user); each unit's charges compose by summing their RDP curves
// (privacy.RDP directly) and converting at the sum of their deltas, plain
// (epsilon, delta) added for charges without a plan, capped by the sum of
// epsilons; the result is the largest epsilon and the largest delta. With
// next, only the units next covers count.
func bruteForce(t *testing.T, unit string, charges []sink.Charge, next *sink.Charge) (eps, delta float64) {
	t.Helper()
	orders := privacy.DefaultOrders()
	all := slices.Clone(charges)
	if next != nil {
		all = append(all, *next)
	}
	type plan struct {
		sgd, hist []float64 // nil: no plan
		user      bool
	}
	plans := make([]plan, len(all))
	for i, ch := range all {
		var p dpwindow.Plan
		err := json.Unmarshal([]byte(ch.Params), &p)
		plans[i].user = err == nil && p.Unit == "user"
		if err == nil && ch.Mechanism == dpMechanism && p.SampleRate > 0 && p.NoiseMultiplier > 0 && p.Steps > 0 {
			plans[i].sgd = privacy.RDP(p.SampleRate, p.NoiseMultiplier, p.Steps, orders)
			if p.HistogramSigma > 0 {
				plans[i].hist = privacy.RDP(1, p.HistogramSigma, 1, orders)
			}
		}
	}
	covers := func(i int, topic string, part int32, off int64) bool {
		if unit == "user" || plans[i].user || len(all[i].Ranges) == 0 {
			return true
		}
		return slices.ContainsFunc(all[i].Ranges, func(r sink.Range) bool {
			return r.Topic == topic && r.Partition == part && r.First <= off && off <= r.Last
		})
	}
	for _, topic := range []string{"t", "u"} {
		for part := int32(0); part < 4; part++ {
			for off := int64(0); off <= 60; off++ {
				if next != nil && !covers(len(all)-1, topic, part, off) {
					continue
				}
				rdp := make([]float64, len(orders))
				var sum, d, rdpDelta, plain float64
				anyPlan := false
				for i, ch := range all {
					if !covers(i, topic, part, off) {
						continue
					}
					sum += ch.Epsilon
					d += ch.Delta
					if plans[i].sgd == nil {
						plain += ch.Epsilon
						continue
					}
					anyPlan = true
					for k := range rdp {
						rdp[k] += plans[i].sgd[k]
						if plans[i].hist != nil {
							rdp[k] += plans[i].hist[k]
						}
					}
					rdpDelta += ch.Delta
				}
				e := sum
				if anyPlan {
					re, _ := privacy.EpsilonFromRDP(orders, rdp, rdpDelta, privacy.Improved)
					e = min(re+plain, sum)
				}
				eps, delta = max(eps, e), max(delta, d)
			}
		}
	}
	return eps, delta
}

// randomCharges draws a small ledger: charges with and without plans,
// several attempts of a window, overlapping recuts, charges without
// ranges, some at unit user, over offsets 0..50 of a few partitions.
func randomCharges(t *testing.T, rng *rand.Rand) []sink.Charge {
	t.Helper()
	n := 1 + rng.IntN(7)
	var out []sink.Charge
	for i := range n {
		var ch sink.Charge
		switch r := rng.Float64(); {
		case r < 0.2 && len(out) > 0: // another attempt of an earlier window
			ch = out[rng.IntN(len(out))]
			ch.Attempt = fmt.Sprintf("a%d", i)
			out = append(out, ch)
			continue
		case r < 0.35: // no plan: only (epsilon, delta)
			ch = sink.Charge{Epsilon: 0.1 + 3*rng.Float64(), Delta: math.Pow(10, -5-3*rng.Float64()), Mechanism: "count", Params: `{"rows_per_records":10}`}
		default:
			unit := "record"
			if rng.Float64() < 0.1 {
				unit = "user"
			}
			hs := 0.0
			if rng.Float64() < 0.8 {
				hs = 2 + 18*rng.Float64()
			}
			p := testPlan(t, 0.01+0.99*rng.Float64()*rng.Float64(), 0.6+2.5*rng.Float64(), 1+rng.IntN(50), hs,
				math.Pow(10, -5-3*rng.Float64()), unit)
			// The charged epsilon may be below the RDP figure (a PLD plan).
			p.Epsilon *= 0.7 + 0.5*rng.Float64()
			ch = planCharge("", "", p)
		}
		ch.Group, ch.WindowID, ch.Attempt = "g", fmt.Sprintf("w%d", i), "a0"
		if rng.Float64() < 0.85 {
			for range 1 + rng.IntN(2) {
				first := rng.Int64N(51)
				r := offsets(rng.Int32N(3), first, first+rng.Int64N(51-first))
				if rng.Float64() < 0.2 {
					r.Topic = "u"
				}
				ch.Ranges = append(ch.Ranges, r)
			}
		}
		if len(out) > 0 && rng.Float64() < 0.3 { // a recut overlapping an earlier window
			prev := out[rng.IntN(len(out))]
			for _, r := range prev.Ranges {
				r.First = max(0, r.First-int64(rng.IntN(5)))
				r.Last = min(50, r.Last+int64(rng.IntN(5)))
				ch.Ranges = append(ch.Ranges, r)
			}
		}
		out = append(out, ch)
	}
	return out
}

func relClose(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}

// TestLifetimeMatchesBruteForce: on random small ledgers, the segment sweep
// gives the brute force's figure, with and without a next charge; it is
// never above the summed figure.
func TestLifetimeMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		unit := "record"
		if trial%5 == 4 {
			unit = "user"
		}
		charges := randomCharges(t, rng)
		l := Lifetime{Unit: unit}
		for _, withNext := range []bool{false, true} {
			chs, next := charges, (*sink.Charge)(nil)
			if withNext {
				chs, next = charges[:len(charges)-1], &charges[len(charges)-1]
			}
			got, err := l.Compose(chs, next)
			if err != nil {
				t.Fatal(err)
			}
			eps, delta := bruteForce(t, unit, chs, next)
			if !relClose(got.Epsilon, eps) || !relClose(got.Delta, delta) {
				t.Fatalf("trial %d (unit %s, next %v): sweep %+v, brute force %g / %g\ncharges %+v", trial, unit, withNext, got, eps, delta, charges)
			}
			summed, _ := sink.Basic{}.Compose(chs, next)
			if got.Epsilon > summed.Epsilon*(1+1e-12) || got.Delta > summed.Delta*(1+1e-12) || got.Unit == "" {
				t.Fatalf("trial %d: composed %+v, summed %+v", trial, got, summed)
			}
		}
	}
}

// TestLifetimeOfOneChargeIsItsEpsilon: one window's charge composes to the
// epsilon its plan states, for the dp processor's real plans; two
// attempts of it compose to less than twice that when the plan was priced
// by RDP (the curves add), so the plan is recognised.
func TestLifetimeOfOneChargeIsItsEpsilon(t *testing.T) {
	for _, accountant := range []string{"rdp", "pld"} {
		t.Run(accountant, func(t *testing.T) {
			cfg := DefaultConfig()
			dp := newDPProcessor(cfg.Processor).(*DPProcessor)
			dp.unit, dp.maxPerUser, dp.accountant = cfg.Privacy.Unit, cfg.Privacy.MaxRecordsPerUser, accountant
			spend, err := dp.PlanSpend(&Window{ID: "w", Records: 1000}, Spend{Epsilon: 4, Delta: 1e-6})
			if err != nil {
				t.Fatal(err)
			}
			r := offsets(0, 0, 999)
			ch := sink.Charge{Group: "g", WindowID: "w", Attempt: "a1", Epsilon: spend.Epsilon, Delta: spend.Delta,
				Mechanism: spend.Mechanism, Params: spend.Params, Ranges: []sink.Range{r}}
			one, err := Lifetime{Unit: "record"}.Compose([]sink.Charge{ch}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if one.Epsilon != spend.Epsilon || one.Delta != spend.Delta {
				t.Errorf("one charge composes to %+v, its plan spends %g / %g", one, spend.Epsilon, spend.Delta)
			}
			again := ch
			again.Attempt = "a2"
			two, err := Lifetime{Unit: "record"}.Compose([]sink.Charge{ch, again}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if accountant == "rdp" && !(two.Epsilon < 1.9*spend.Epsilon) || two.Epsilon > 2*spend.Epsilon {
				t.Errorf("two attempts compose to %g; one spends %g", two.Epsilon, spend.Epsilon)
			}
			if two.Delta != 2*spend.Delta || two.Unit != "record t[0] offsets 0-999" {
				t.Errorf("two attempts: %+v", two)
			}
		})
	}
}

// TestLifetimeComposesPerUnit: at unit user, 20 windows of a typical plan
// compose by RDP to far less than their sum; at unit record, disjoint
// windows cost one window's epsilon, and an overlapping recut costs the
// records it overlaps.
func TestLifetimeComposesPerUnit(t *testing.T) {
	p := testPlan(t, 0.0625, 1, 40, 10, 1e-6, "record")
	pu := p
	pu.Unit = "user"
	var disjoint, users []sink.Charge
	for i := range 20 {
		w := fmt.Sprintf("w%02d", i)
		disjoint = append(disjoint, planCharge(w, "a1", p, offsets(int32(i%2), int64(100*i), int64(100*i+99))))
		users = append(users, planCharge(w, "a1", pu, offsets(int32(i%2), int64(100*i), int64(100*i+99))))
	}
	recut := append(slices.Clone(disjoint[:2]), planCharge("w-recut", "a1", p, offsets(0, 50, 149)))
	tests := []struct {
		name    string
		unit    string
		charges []sink.Charge
		// lo <= composed/epsilon <= hi
		lo, hi float64
		unitOf string
		delta  float64
	}{
		{"20 windows of one user", "user", users, 2, 4, "user", 20e-6},
		{"20 windows, plans at unit user", "record", users, 2, 4, "any record", 20e-6},
		{"20 disjoint windows of records", "record", disjoint, 1, 1, "record t[0] offsets 0-99", 1e-6},
		{"a recut over one window's records", "record", recut, 1.2, 1.8, "record t[0] offsets 50-99", 2e-6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Lifetime{Unit: tt.unit}.Compose(tt.charges, nil)
			if err != nil {
				t.Fatal(err)
			}
			ratio := got.Epsilon / p.Epsilon
			if ratio < tt.lo-1e-12 || ratio > tt.hi+1e-12 || got.Unit != tt.unitOf || !relClose(got.Delta, tt.delta) {
				t.Errorf("composed %+v: %.3f x one window's %.3f, want %g..%g, unit %q, delta %g",
					got, ratio, p.Epsilon, tt.lo, tt.hi, tt.unitOf, tt.delta)
			}
			if summed, _ := (sink.Basic{}).Compose(tt.charges, nil); got.Epsilon > summed.Epsilon {
				t.Errorf("composed %g > summed %g", got.Epsilon, summed.Epsilon)
			}
		})
	}
}

// TestLifetimeCapRefusesExactlyPastTheCap: charging a stream of windows
// through a ledger with the Lifetime composer, each charge is refused
// exactly when the brute-force composition with it would pass the cap
// (never less: the check is conservative), a refusal writes nothing, and a
// retry of a landed key is not refused even once the cap is reached. Run on
// the file ledger and, when a server is configured, on ClickHouse.
func TestLifetimeCapRefusesExactlyPastTheCap(t *testing.T) {
	ledgers := map[string]func(t *testing.T) Budget{
		"file":       func(t *testing.T) Budget { return sink.FileLedger{Path: filepath.Join(t.TempDir(), "ledger.jsonl")} },
		"clickhouse": func(t *testing.T) Budget { return freshSink(t) },
	}
	for name, newLedger := range ledgers {
		t.Run(name, func(t *testing.T) {
			for _, unit := range []string{"record", "user"} {
				t.Run(unit, func(t *testing.T) {
					testCapRefusesExactly(t, newLedger(t), unit)
				})
			}
		})
	}
}

func testCapRefusesExactly(t *testing.T, b Budget, unit string) {
	t.Helper()
	ctx := context.Background()
	p := testPlan(t, 0.0625, 1, 40, 10, 1e-6, unit)
	// Windows, attempts and recuts over a few hundred offsets. The cap,
	// 1.45 windows' epsilon, lets three of these windows compose (1.39x)
	// but not four (1.55x): at unit user the fourth charge and every later
	// one is refused; at unit record only a charge that would put a fourth
	// window on some record.
	limit := sink.Cap{Epsilon: 1.45 * p.Epsilon, Composer: Lifetime{Unit: unit}}
	stream := []sink.Charge{
		planCharge("w1", "a1", p, offsets(0, 0, 49)),
		planCharge("w2", "a1", p, offsets(0, 50, 99)),
		planCharge("w1", "a2", p, offsets(0, 0, 49)),
		planCharge("w3", "a1", p, offsets(0, 25, 74)),
		planCharge("w4", "a1", p, offsets(1, 0, 99)),
		planCharge("w5", "a1", p, offsets(0, 0, 99)),
		planCharge("w6", "a1", p, offsets(0, 100, 199)),
		planCharge("w7", "a1", p, offsets(1, 0, 49)),
		planCharge("w8", "a1", p, offsets(0, 100, 199)),
		planCharge("w9", "a1", p, offsets(0, 150, 249)),
		planCharge("w10", "a1", p, offsets(1, 0, 99)),
		planCharge("w11", "a1", p, offsets(1, 25, 49)),
	}
	var landed []sink.Charge
	refusals := 0
	for i, ch := range stream {
		truth, _ := bruteForceWide(t, unit, landed, &ch)
		err := b.Charge(ctx, ch, limit)
		switch {
		case truth > limit.Epsilon && !errors.Is(err, sink.ErrBudgetExceeded):
			t.Fatalf("charge %d (%s/%s): composes to %g > cap %g, not refused: %v", i, ch.WindowID, ch.Attempt, truth, limit.Epsilon, err)
		case truth <= limit.Epsilon && err != nil:
			t.Fatalf("charge %d (%s/%s): composes to %g <= cap %g, refused: %v", i, ch.WindowID, ch.Attempt, truth, limit.Epsilon, err)
		case err != nil:
			refusals++
		default:
			landed = append(landed, ch)
		}
	}
	if refusals == 0 || len(landed) < 3 {
		t.Fatalf("%d refusals, %d landed: the stream does not test the cap", refusals, len(landed))
	}
	for _, ch := range landed {
		if err := b.Charge(ctx, ch, limit); err != nil {
			t.Errorf("retry of landed %s/%s refused: %v", ch.WindowID, ch.Attempt, err)
		}
	}
	spent, err := b.(interface {
		Spent(context.Context, string, sink.Composer) (sink.Spending, error)
	}).Spent(ctx, "g", Lifetime{Unit: unit})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := bruteForceWide(t, unit, landed, nil)
	if spent.Attempts != len(landed) || !relClose(spent.Composed.Epsilon, want) || spent.Composed.Epsilon > limit.Epsilon {
		t.Errorf("spent %+v; want %d attempts composing to %g <= %g", spent, len(landed), want, limit.Epsilon)
	}
}

// bruteForceWide is bruteForce for the stream above, whose offsets reach
// past bruteForce's 0..60: every range there starts on a multiple of 25 and
// ends just before one, so dividing offsets by 25 keeps which ranges
// overlap and fits them in.
func bruteForceWide(t *testing.T, unit string, charges []sink.Charge, next *sink.Charge) (eps, delta float64) {
	t.Helper()
	scale := func(chs []sink.Charge) []sink.Charge {
		out := slices.Clone(chs)
		for i := range out {
			out[i].Ranges = slices.Clone(out[i].Ranges)
			for j, r := range out[i].Ranges {
				out[i].Ranges[j].First, out[i].Ranges[j].Last = r.First/25, r.Last/25
			}
		}
		return out
	}
	if next != nil {
		n := scale([]sink.Charge{*next})[0]
		next = &n
	}
	return bruteForce(t, unit, scale(charges), next)
}
