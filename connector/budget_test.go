package connector

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/dpwindow"
	"github.com/dpinstruct/dpinstruct/sink"
)

// planningProcessor plans a fixed spend.
type planningProcessor struct {
	CountProcessor
	plan Spend
}

func (p *planningProcessor) PlanSpend(*Window, Spend) (Spend, error) { return p.plan, nil }

func TestPlanSpendKeepsWithinTheTarget(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Privacy.Epsilon, cfg.Privacy.Delta = 2, 1e-6
	tests := []struct {
		name    string
		proc    Processor
		want    Spend
		overrun bool
	}{
		{"not a planner: charged the target", &CountProcessor{}, Spend{Epsilon: 2, Delta: 1e-6, Mechanism: "count", Params: `{"rows_per_records":10}`}, false},
		{"planner within the target", &planningProcessor{plan: Spend{Epsilon: 1.5, Delta: 1e-7, Mechanism: "dpsgd+histogram", Params: `{"q":0.1}`}},
			Spend{Epsilon: 1.5, Delta: 1e-7, Mechanism: "dpsgd+histogram", Params: `{"q":0.1}`}, false},
		{"planner over epsilon", &planningProcessor{plan: Spend{Epsilon: 2.5, Delta: 1e-7}}, Spend{}, true},
		{"planner over delta", &planningProcessor{plan: Spend{Epsilon: 1, Delta: 1e-5}}, Spend{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Connector{cfg: cfg, deps: Deps{Processor: tt.proc}}
			got, err := c.planSpend(&Window{ID: "w"})
			if tt.overrun {
				if !errors.Is(err, errSpendOverrun) {
					t.Fatalf("err %v, want errSpendOverrun", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestDPProcessorPricesWithTheConfiguredAccountant: the dp processor's
// plan for a demo-sized window is calibrated by privacy.accountant (pld by
// default), and the ledger's params name the accountant that priced it and
// its error against the PRV lower bound; the PLD plan needs the least
// noise for the same target and RDP the most.
func TestDPProcessorPricesWithTheConfiguredAccountant(t *testing.T) {
	if def := DefaultConfig().Privacy.Accountant; def != "pld" {
		t.Errorf("default accountant %q, want pld (the tightest)", def)
	}
	sigmas := map[string]float64{}
	for _, accountant := range []string{"rdp", "pld", "prv"} {
		cfg := DefaultConfig()
		dp := newDPProcessor(cfg.Processor).(*DPProcessor)
		dp.unit, dp.maxPerUser, dp.accountant = cfg.Privacy.Unit, cfg.Privacy.MaxRecordsPerUser, accountant
		spend, err := dp.PlanSpend(&Window{ID: "w-" + accountant, Records: 1000}, Spend{Epsilon: 4, Delta: 1e-6})
		if err != nil {
			t.Fatal(err)
		}
		var plan dpwindow.Plan
		if err := json.Unmarshal([]byte(spend.Params), &plan); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"rdp": "rdp-improved", "pld": "pld-connect-dots", "prv": "prv-upper"}[accountant]
		if plan.Accountant != want || spend.Epsilon > 4 || spend.Epsilon < 3.9 {
			t.Errorf("%s: params %s, epsilon %g", accountant, spend.Params, spend.Epsilon)
		}
		var params map[string]any
		if err := json.Unmarshal([]byte(spend.Params), &params); err != nil {
			t.Fatal(err)
		}
		if e, ok := params["accountant_error"].(float64); !ok || !(e > 0 && e < spend.Epsilon) {
			t.Errorf("%s: params carry no accountant error: %s", accountant, spend.Params)
		}
		sigmas[accountant] = plan.NoiseMultiplier
	}
	if !(sigmas["pld"] <= sigmas["prv"] && sigmas["prv"] < sigmas["rdp"]) {
		t.Errorf("noise: pld %g, prv %g, rdp %g", sigmas["pld"], sigmas["prv"], sigmas["rdp"])
	}
}

func TestCheckResultWithholdsOutputClaimingMoreThanCharged(t *testing.T) {
	charged := Spend{Epsilon: 2, Delta: 1e-6}
	tests := []struct {
		name           string
		epsilon, delta float64
		ok             bool
	}{
		{"nothing claimed", 0, 0, true},
		{"exactly the charge", 2, 1e-6, true},
		{"less", 1.9, 1e-7, true},
		{"more epsilon", 2.01, 1e-6, false},
		{"more delta", 2, 2e-6, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkResult("w", &Result{Epsilon: tt.epsilon, Delta: tt.delta}, charged)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// recordingBudget accepts or refuses every charge and remembers them.
type recordingBudget struct {
	refuse  bool
	charges []sink.Charge
}

func (b *recordingBudget) Charge(_ context.Context, ch sink.Charge, _ sink.Cap) error {
	if b.refuse {
		return sink.ErrBudgetExceeded
	}
	b.charges = append(b.charges, ch)
	return nil
}

func TestChargeNeedsEveryLedgerToAccept(t *testing.T) {
	w := sink.Window{ID: "w1", Group: "g", Ranges: []sink.Range{{Topic: "t", Partition: 3}}}
	first, second := &recordingBudget{}, &recordingBudget{refuse: true}
	c := &Connector{cfg: DefaultConfig(), deps: Deps{Budgets: []Budget{first, second}, Metrics: NewMetrics()}}
	err := c.charge(context.Background(), w, "a1", Spend{Epsilon: 1, Delta: 1e-6})
	var be *BudgetError
	if !errors.As(err, &be) || !errors.Is(err, sink.ErrBudgetExceeded) || be.Window != "w1" {
		t.Fatalf("err %v, want a BudgetError for w1", err)
	}
	// The first ledger keeps its charge: over-counting is the safe side.
	if len(first.charges) != 1 || first.charges[0].Attempt != "a1" || first.charges[0].Partitions[0] != 3 ||
		!slices.Equal(first.charges[0].Ranges, w.Ranges) {
		t.Errorf("first ledger charges %+v", first.charges)
	}
}
