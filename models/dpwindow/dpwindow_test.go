package dpwindow

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/privacy"
)

func TestMakePlanMeetsTheTargetWithBothMechanisms(t *testing.T) {
	tests := []struct {
		name           string
		cfg            Config
		n              int
		epsilon, delta float64
		wantSteps      int
	}{
		{"demo window", Config{}, 1000, 4, 1e-6, 32},
		{"two epochs", Config{Epochs: 2, ExpectedBatch: 64}, 3200, 8, 1e-6, 100},
		{"tight budget", Config{HistogramSigma: 10}, 3200, 1, 1e-6, 100},
		{"tiny window", Config{ExpectedBatch: 16}, 60, 8, 1e-6, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := MakePlan(tt.cfg, tt.n, tt.epsilon, tt.delta)
			if err != nil {
				t.Fatal(err)
			}
			if p.Steps != tt.wantSteps {
				t.Errorf("steps %d, want %d", p.Steps, tt.wantSteps)
			}
			if !(p.Epsilon <= tt.epsilon) || p.Epsilon < 0.95*tt.epsilon {
				t.Errorf("composed epsilon %g: want at most the target %g and within 5%% of it (sigma is the smallest that meets it)", p.Epsilon, tt.epsilon)
			}
			if !(p.SGDEpsilon < p.Epsilon && p.HistogramEpsilon < p.Epsilon && p.HistogramEpsilon > 0) {
				t.Errorf("each mechanism alone must cost less than both: sgd %g, histogram %g, both %g", p.SGDEpsilon, p.HistogramEpsilon, p.Epsilon)
			}
			// Recompute the composition independently of the plan, with
			// the default accountant (PLD).
			e, err := privacy.PLDEpsilon(p.SampleRate, p.NoiseMultiplier, p.Steps, tt.delta, privacy.PLDOptions{HistogramSigma: p.HistogramSigma})
			if err != nil || e > tt.epsilon || p.Accountant != "pld-connect-dots" {
				t.Errorf("PLD accountant gives %g (%v) for the plan (%s), over %g", e, err, p.Accountant, tt.epsilon)
			}
			var back Plan
			if err := json.Unmarshal([]byte(p.JSON()), &back); err != nil || back != p {
				t.Errorf("plan JSON does not round-trip: %v", err)
			}
		})
	}
}

// TestMakePlanWithEachAccountant: calibrated by the PLD accountant (the
// default) the demo's window needs the least noise for the same target,
// the PRV accountant's upper bound a little more and RDP the most; each
// plan's epsilons are its accountant's (composed within the target and
// within 1% of it), each states the PRV lower bound and the accountant's
// error (the charged epsilon minus that bound: ~0.01 for pld and prv, far
// more for RDP), and RDP, looser, puts the PLD plan above the target.
func TestMakePlanWithEachAccountant(t *testing.T) {
	plans := map[string]Plan{}
	for _, a := range []string{"", "pld", "prv", "rdp"} {
		p, err := MakePlan(Config{Accountant: a}, 1000, 4, 1e-6)
		if err != nil {
			t.Fatal(err)
		}
		plans[a] = p
		if !(p.Epsilon <= 4 && p.Epsilon >= 0.99*4) {
			t.Errorf("%s plan spends %g of 4", a, p.Epsilon)
		}
		if !(p.SGDEpsilon < p.Epsilon && p.HistogramEpsilon > 0 && p.HistogramEpsilon < p.Epsilon) {
			t.Errorf("%s plan parts: sgd %g, histogram %g, both %g", a, p.SGDEpsilon, p.HistogramEpsilon, p.Epsilon)
		}
		if !(p.EpsilonLower > 0 && p.EpsilonLower <= p.Epsilon) || math.Abs(p.AccountantError-(p.Epsilon-p.EpsilonLower)) > 1e-12 {
			t.Errorf("%s plan: lower bound %g, error %g, epsilon %g", a, p.EpsilonLower, p.AccountantError, p.Epsilon)
		}
	}
	def, pld, prv, rdp := plans[""], plans["pld"], plans["prv"], plans["rdp"]
	if def != pld || pld.Accountant != "pld-connect-dots" || prv.Accountant != "prv-upper" || rdp.Accountant != "rdp-improved" {
		t.Errorf("accountants: default %s, %s, %s, %s", def.Accountant, pld.Accountant, prv.Accountant, rdp.Accountant)
	}
	if !(pld.NoiseMultiplier <= prv.NoiseMultiplier && prv.NoiseMultiplier < rdp.NoiseMultiplier) {
		t.Errorf("noise: pld %g, prv %g, rdp %g", pld.NoiseMultiplier, prv.NoiseMultiplier, rdp.NoiseMultiplier)
	}
	if !(pld.AccountantError < 0.02 && prv.AccountantError < 0.03 && rdp.AccountantError > 0.3) {
		t.Errorf("accountant errors: pld %g, prv %g, rdp %g", pld.AccountantError, prv.AccountantError, rdp.AccountantError)
	}
	a := privacy.NewAccountant(nil, privacy.Improved)
	a.ComposeSGD(pld.SampleRate, pld.NoiseMultiplier, pld.Steps)
	a.ComposeGaussian(pld.HistogramSigma)
	if e, _ := a.Epsilon(1e-6); !(e > 4) {
		t.Errorf("RDP gives %g for the PLD plan: the PLD plan should be one RDP cannot certify", e)
	}
	t.Logf("demo window at epsilon 4: sigma %.4f (PLD), %.4f (PRV), %.4f (RDP)", pld.NoiseMultiplier, prv.NoiseMultiplier, rdp.NoiseMultiplier)
	if _, err := MakePlan(Config{Accountant: "moments"}, 1000, 4, 1e-6); err == nil {
		t.Error("want an error for an unknown accountant")
	}
}

func TestMakePlanRefusesWhatCannotBeMet(t *testing.T) {
	// The histogram alone at sigma 1 costs more than epsilon 1.
	if _, err := MakePlan(Config{HistogramSigma: 1}, 1000, 1, 1e-6); err == nil {
		t.Error("want an error when the histogram alone exceeds the target")
	}
	if _, err := MakePlan(Config{}, 0, 4, 1e-6); err == nil {
		t.Error("want an error for an empty window")
	}
}

func TestBoundUsersKeepsAtMostKRandomRecordsPerUser(t *testing.T) {
	texts := []string{"a1", "b1", "a2", "a3", "c1", "a4", "a5", "b2", "x", "y"}
	users := []string{"a", "b", "a", "a", "c", "a", "a", "b", "", ""}
	seen := map[string]bool{}
	for seed := range uint64(50) {
		groups := BoundUsers(texts, users, 3, rand.New(rand.NewPCG(seed, 1)))
		// a, b, c, and the two records without a user id, each its own user.
		if len(groups) != 5 || DistinctUsers(users) != 5 {
			t.Fatalf("%d groups (%d distinct users), want 5", len(groups), DistinctUsers(users))
		}
		if len(groups[0]) != 3 || len(groups[1]) != 2 || len(groups[2]) != 1 || groups[3][0] != "x" || groups[4][0] != "y" {
			t.Fatalf("groups %v", groups)
		}
		for i, s := range groups[0] {
			if s[0] != 'a' || (i > 0 && s <= groups[0][i-1]) {
				t.Fatalf("user a kept %v: must be a's records, in order", groups[0])
			}
			seen[s] = true
		}
	}
	// The kept records are chosen at random: over 50 seeds every one of a's
	// five records is kept at least once.
	for _, s := range []string{"a1", "a2", "a3", "a4", "a5"} {
		if !seen[s] {
			t.Errorf("%s was never kept: the choice is not random", s)
		}
	}
}

func TestUserLevelPlanRecordsTheUnit(t *testing.T) {
	p, err := MakePlan(Config{Unit: "user", MaxPerUser: 3, ExpectedBatch: 16}, 200, 4, 1e-6)
	if err != nil {
		t.Fatal(err)
	}
	if p.Unit != "user" || p.MaxPerUser != 3 || p.Records != 200 || p.SampleRate != 16.0/200 {
		t.Errorf("plan %+v", p)
	}
	if _, err := MakePlan(Config{Unit: "household"}, 200, 4, 1e-6); err == nil {
		t.Error("an unknown unit must be refused")
	}
}
