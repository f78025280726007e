package sink

import (
	"fmt"
	"slices"
	"strings"
)

// Composer totals a consumer group's privacy charges into a lifetime spend.
// The sink stores charges but does not know what their parameters mean (the
// mechanisms live in models/, which the sink must not import), so the
// caller supplies the composition: the connector composes per privacy unit
// by RDP; Basic, the zero value's behaviour, adds epsilons.
type Composer interface {
	// Compose returns the lifetime spend of charges, one per (window,
	// attempt) key, as the worst privacy unit's. When next is non-nil it
	// is composed too, and only the units next covers are considered: the
	// spend they would reach if next were charged, which is what the cap
	// is checked against. The result must never be below the true spend.
	Compose(charges []Charge, next *Charge) (Total, error)
}

// Total is a composed (epsilon, delta): every privacy unit it describes is
// (Epsilon, Delta)-DP over the charges composed. Unit names, for people,
// the unit that attains Epsilon (empty when nothing is charged).
type Total struct {
	Epsilon, Delta float64
	Unit           string
}

// Spending is a group's spend as Spent reports it.
type Spending struct {
	// Attempts is the number of charged (window, attempt) keys.
	Attempts int
	// Summed is basic composition over every key: the sum of epsilons and
	// of deltas, an upper bound whatever the units.
	Summed Total
	// Composed is the Composer's figure; it equals Summed under Basic.
	Composed Total
}

// Cap is the lifetime limit Charge checks: a charge is refused when the
// composed epsilon with it would exceed Epsilon. The zero value checks
// nothing; a nil Composer means Basic.
type Cap struct {
	// Epsilon is privacy.lifetime_epsilon; 0 means no cap.
	Epsilon  float64
	Composer Composer
}

func (c Cap) composer() Composer { return orBasic(c.Composer) }

func orBasic(c Composer) Composer {
	if c == nil {
		return Basic{}
	}
	return c
}

// Basic is basic (sequential) composition: the sum of epsilons and of
// deltas over every charge, whatever privacy unit each covers. It never
// under-counts and needs nothing but (epsilon, delta), so it is what a nil
// Composer means.
type Basic struct{}

// Compose implements Composer.
func (Basic) Compose(charges []Charge, next *Charge) (Total, error) {
	var t Total
	for _, ch := range charges {
		t.Epsilon += ch.Epsilon
		t.Delta += ch.Delta
	}
	if next != nil {
		t.Epsilon += next.Epsilon
		t.Delta += next.Delta
	}
	if len(charges) > 0 || next != nil {
		t.Unit = "every charge summed"
	}
	return t, nil
}

// ledger is a group's charges as read back, one per key. Duplicate rows of
// a key (a retried insert, or rows that disagree) merge conservatively:
// the largest epsilon and delta, the union of their ranges (none, meaning
// every record, when a row has none), and no parameters when rows disagree
// on them, which leaves only (epsilon, delta) to compose.
type ledger map[chargeKey]Charge

func (l ledger) add(ch Charge) {
	k := ch.key()
	cur, ok := l[k]
	if !ok {
		l[k] = ch
		return
	}
	cur.Epsilon, cur.Delta = max(cur.Epsilon, ch.Epsilon), max(cur.Delta, ch.Delta)
	if cur.Mechanism != ch.Mechanism || cur.Params != ch.Params {
		cur.Params = ""
	}
	if len(cur.Ranges) == 0 || len(ch.Ranges) == 0 {
		cur.Ranges = nil
	} else {
		for _, r := range ch.Ranges {
			if !slices.Contains(cur.Ranges, r) {
				cur.Ranges = append(slices.Clip(cur.Ranges), r)
			}
		}
	}
	l[k] = cur
}

// charges lists the charges in key order, leaving out skip (if set).
func (l ledger) charges(skip *chargeKey) []Charge {
	out := make([]Charge, 0, len(l))
	for k, ch := range l {
		if skip == nil || k != *skip {
			out = append(out, ch)
		}
	}
	slices.SortFunc(out, func(a, b Charge) int {
		if c := strings.Compare(a.WindowID, b.WindowID); c != 0 {
			return c
		}
		return strings.Compare(a.Attempt, b.Attempt)
	})
	return out
}

// spending totals the ledger both ways.
func (l ledger) spending(comp Composer) (Spending, error) {
	chs := l.charges(nil)
	summed, _ := Basic{}.Compose(chs, nil)
	composed, err := orBasic(comp).Compose(chs, nil)
	if err != nil {
		return Spending{}, fmt.Errorf("sink: compose the privacy ledger: %w", err)
	}
	return Spending{Attempts: len(chs), Summed: summed, Composed: composed}, nil
}

// checkCap refuses ch when, composed with the group's charges on other
// keys, it would take a privacy unit past limit.Epsilon (> 0). The key
// being charged is left out so that retrying a charge that already landed
// is not refused. A composed figure that is not a number refuses too.
func checkCap(where string, l ledger, ch Charge, limit Cap) error {
	if limit.Epsilon <= 0 {
		return nil
	}
	k := ch.key()
	others := l.charges(&k)
	comp := limit.composer()
	after, err := comp.Compose(others, &ch)
	if err != nil {
		return fmt.Errorf("sink: %s: charge window %s attempt %s of group %s: compose the ledger: %w",
			where, ch.WindowID, ch.Attempt, ch.Group, err)
	}
	if after.Epsilon <= limit.Epsilon {
		return nil
	}
	spent, err := comp.Compose(others, nil)
	if err != nil {
		return fmt.Errorf("sink: %s: charge window %s attempt %s of group %s: compose the ledger: %w",
			where, ch.WindowID, ch.Attempt, ch.Group, err)
	}
	return fmt.Errorf("sink: %s: charge window %s attempt %s of group %s: %w: spent epsilon %g (composed, %s) "+
		"+ requested %g would compose to %g (%s) > lifetime cap %g",
		where, ch.WindowID, ch.Attempt, ch.Group, ErrBudgetExceeded, spent.Epsilon, orNothing(spent.Unit),
		ch.Epsilon, after.Epsilon, after.Unit, limit.Epsilon)
}

func orNothing(unit string) string {
	if unit == "" {
		return "nothing charged"
	}
	return unit
}
