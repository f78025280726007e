package dpwindow

import (
	"encoding/json"
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
			// Recompute the composition independently of the plan.
			a := privacy.NewAccountant(nil, privacy.Improved)
			a.ComposeSGD(p.SampleRate, p.NoiseMultiplier, p.Steps)
			a.ComposeGaussian(p.HistogramSigma)
			if e, _ := a.Epsilon(tt.delta); e > tt.epsilon {
				t.Errorf("accountant gives %g for the plan, over %g", e, tt.epsilon)
			}
			var back Plan
			if err := json.Unmarshal([]byte(p.JSON()), &back); err != nil || back != p {
				t.Errorf("plan JSON does not round-trip: %v", err)
			}
		})
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
