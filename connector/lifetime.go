package connector

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/dpinstruct/dpinstruct/models/dpwindow"
	"github.com/dpinstruct/dpinstruct/models/privacy"
	"github.com/dpinstruct/dpinstruct/sink"
)

// Lifetime is the connector's sink.Composer: the lifetime spend of a
// consumer group, composed per privacy unit, by Rényi DP where a charge's
// plan says what ran, instead of adding every window's epsilon.
//
// Units. A record (one offset of one topic partition) is spent on by the
// charges whose ranges hold it: the attempts of its window, and any other
// window whose ranges overlap (a recut after a crash or a lost plan race).
// The figure is the worst record's. At unit user (Unit, or a charge whose
// plan says so) a user may appear in every window, so the charge covers
// every unit; so does a charge without ranges (charged before ranges were
// recorded). Records no ranged charge holds are covered by those alone.
//
// A set of charges composes as follows: those with a DP-SGD plan
// (dpwindow.Plan params of the dp processor) add their RDP curves
// (subsampled Gaussian steps plus the histogram's Gaussian), converted at
// the sum of their deltas; the others can only add their (epsilon, delta).
// The result is the smaller of that and the plain sum of epsilons, at the
// sum of deltas: both bound the set, so the smaller does, and the figure is
// never above basic composition. A PLD-priced plan is composed by RDP too
// (a valid, if looser, bound for the same mechanism).
type Lifetime struct {
	// Unit is privacy.unit: "user" composes every charge together.
	Unit string
}

var _ sink.Composer = Lifetime{}

// dpMechanism is the Mechanism of the dp processor's charges, whose
// Params are a dpwindow.Plan.
const dpMechanism = "dpsgd+histogram"

// unitCharge is a charge ready to compose.
type unitCharge struct {
	eps, delta float64
	// rdp is the plan's RDP curve over lifetimeOrders; nil when the charge
	// has no usable plan and only its (eps, delta) composes.
	rdp []float64
	// everywhere: the charge covers every unit (unit user, or no ranges).
	everywhere bool
	ranges     []sink.Range
}

// lifetimeOrders are the Rényi orders every curve is computed at.
var lifetimeOrders = privacy.DefaultOrders()

// Compose implements sink.Composer.
func (l Lifetime) Compose(charges []sink.Charge, next *sink.Charge) (sink.Total, error) {
	all := make([]unitCharge, 0, len(charges)+1)
	for _, ch := range charges {
		all = append(all, l.prepare(ch))
	}
	nextAt := -1
	if next != nil {
		nextAt = len(all)
		all = append(all, l.prepare(*next))
	}
	var global []int
	byPart := map[partitionKey][]span{}
	for i, c := range all {
		if c.everywhere {
			global = append(global, i)
			continue
		}
		for _, r := range c.ranges {
			k := partitionKey{r.Topic, r.Partition}
			byPart[k] = append(byPart[k], span{i, r.First, r.Last})
		}
	}
	var w worst
	// Units no ranged charge covers: every user at unit user, records
	// outside every charged range otherwise.
	if nextAt < 0 || all[nextAt].everywhere {
		unit := "any record outside the charged ranges"
		switch {
		case l.Unit == "user":
			unit = "user"
		case len(byPart) == 0:
			unit = "any record"
		}
		if len(all) > 0 {
			eps, delta := composeSet(all, global)
			w.consider(eps, delta, unit)
		}
	}
	keys := make([]partitionKey, 0, len(byPart))
	for k := range byPart {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b partitionKey) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	for _, k := range keys {
		for _, seg := range segments(byPart[k]) {
			set := append(slices.Clip(global), seg.charges...)
			if nextAt >= 0 && !slices.Contains(set, nextAt) {
				continue
			}
			eps, delta := composeSet(all, set)
			if w.consider(eps, delta, "") {
				w.total.Unit = fmt.Sprintf("record %s[%d] offsets %d-%d", k.topic, k.partition, seg.first, seg.last)
			}
		}
	}
	if math.IsNaN(w.total.Epsilon) || math.IsNaN(w.total.Delta) {
		return sink.Total{}, fmt.Errorf("lifetime privacy spend is not a number (epsilon %v, delta %v)", w.total.Epsilon, w.total.Delta)
	}
	return w.total, nil
}

// prepare reads what a charge covers and, from its plan, its RDP curve.
func (l Lifetime) prepare(ch sink.Charge) unitCharge {
	c := unitCharge{eps: ch.Epsilon, delta: ch.Delta, everywhere: l.Unit == "user" || len(ch.Ranges) == 0, ranges: ch.Ranges}
	for _, r := range ch.Ranges {
		if r.First > r.Last {
			c.everywhere = true // not a range: assume the worst
		}
	}
	var plan dpwindow.Plan
	if ch.Params == "" || json.Unmarshal([]byte(ch.Params), &plan) != nil {
		return c
	}
	if plan.Unit == "user" {
		c.everywhere = true
	}
	if ch.Mechanism == dpMechanism && plan.SampleRate > 0 && plan.SampleRate <= 1 &&
		plan.NoiseMultiplier > 0 && plan.Steps > 0 && plan.HistogramSigma >= 0 && !math.IsInf(plan.HistogramSigma, 0) {
		c.rdp = planRDP(plan)
	}
	return c
}

// curveKey identifies a plan's RDP curve: windows of the same size share
// a plan, so their curve is computed once per process.
type curveKey struct {
	q, sigma, histogramSigma float64
	steps                    int
}

var (
	curvesMu sync.Mutex
	curves   = map[curveKey][]float64{}
)

// planRDP is the RDP curve of a plan: its DP-SGD steps and, when it has
// one, its histogram's Gaussian release (sensitivity 1).
func planRDP(p dpwindow.Plan) []float64 {
	k := curveKey{p.SampleRate, p.NoiseMultiplier, p.HistogramSigma, p.Steps}
	curvesMu.Lock()
	c, ok := curves[k]
	curvesMu.Unlock()
	if ok {
		return c
	}
	a := privacy.NewAccountant(lifetimeOrders, privacy.Improved)
	a.ComposeSGD(p.SampleRate, p.NoiseMultiplier, p.Steps)
	if p.HistogramSigma > 0 {
		a.ComposeGaussian(p.HistogramSigma)
	}
	c = a.RDP()
	curvesMu.Lock()
	if len(curves) >= 4096 { // bound the memory of a long-lived process
		clear(curves)
	}
	curves[k] = c
	curvesMu.Unlock()
	return c
}

// composeSet composes the charges all[i] for i in set (see Lifetime).
func composeSet(all []unitCharge, set []int) (eps, delta float64) {
	var sumEps, rdpDelta, plainEps float64
	var rdp []float64
	for _, i := range set {
		c := all[i]
		sumEps += c.eps
		delta += c.delta
		if c.rdp == nil {
			plainEps += c.eps
			continue
		}
		if rdp == nil {
			rdp = make([]float64, len(c.rdp))
		}
		for k, r := range c.rdp {
			rdp[k] += r
		}
		rdpDelta += c.delta
	}
	if rdp == nil {
		return sumEps, delta
	}
	rdpEps := math.Inf(1)
	if rdpDelta > 0 && rdpDelta < 1 {
		rdpEps, _ = privacy.EpsilonFromRDP(lifetimeOrders, rdp, rdpDelta, privacy.Improved)
	}
	return min(rdpEps+plainEps, sumEps), delta
}

// span is one charge's range on one partition.
type span struct {
	charge      int
	first, last int64
}

// segment is a run of offsets that the same charges cover.
type segment struct {
	first, last int64
	charges     []int
}

// segments cuts a partition at every range's ends into the runs of
// offsets that the same spans cover, leaving out runs no span covers, in
// one sweep over the cuts with the spans open at each. Each segment lists
// its charges once, however many of their ranges hold it.
func segments(spans []span) []segment {
	byFirst := slices.Clone(spans)
	slices.SortFunc(byFirst, func(a, b span) int { return cmp.Compare(a.first, b.first) })
	cuts := make([]int64, 0, 2*len(spans))
	for _, s := range spans {
		cuts = append(cuts, s.first)
		if s.last < math.MaxInt64 {
			cuts = append(cuts, s.last+1)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	var out []segment
	var open []span
	added := 0
	for i, first := range cuts {
		last := int64(math.MaxInt64)
		if i+1 < len(cuts) {
			last = cuts[i+1] - 1
		}
		// Every span starts and ends at a cut, so an open span covers the
		// whole run [first, last].
		open = slices.DeleteFunc(open, func(s span) bool { return s.last < first })
		for ; added < len(byFirst) && byFirst[added].first <= first; added++ {
			open = append(open, byFirst[added])
		}
		var chs []int
		for _, s := range open {
			if !slices.Contains(chs, s.charge) {
				chs = append(chs, s.charge)
			}
		}
		if len(chs) > 0 {
			out = append(out, segment{first, last, chs})
		}
	}
	return out
}

// worst keeps the largest epsilon seen and the unit attaining it, and the
// largest delta: every unit considered is then (epsilon, delta)-DP.
// consider reports whether eps is the new largest (the caller may then
// name the unit, which is only formatted when needed).
type worst struct {
	total sink.Total
	seen  bool
}

func (w *worst) consider(eps, delta float64, unit string) bool {
	largest := !w.seen || eps > w.total.Epsilon || math.IsNaN(eps)
	if largest {
		w.total.Epsilon, w.total.Unit = eps, unit
	}
	w.total.Delta = max(w.total.Delta, delta)
	w.seen = true
	return largest
}
