package connector

import (
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/sink"
)

func TestWindowIDIsDeterministicAndDistinct(t *testing.T) {
	r := []sink.Range{{Topic: "t", Partition: 1, First: 0, Last: 99}}
	a, b := WindowID("g", r), WindowID("g", r)
	if a != b {
		t.Fatalf("same input, ids %s and %s", a, b)
	}
	others := []string{
		WindowID("g2", r),
		WindowID("g", []sink.Range{{Topic: "t", Partition: 2, First: 0, Last: 99}}),
		WindowID("g", []sink.Range{{Topic: "t", Partition: 1, First: 0, Last: 98}}),
		WindowID("g", []sink.Range{{Topic: "u", Partition: 1, First: 0, Last: 99}}),
	}
	for _, o := range others {
		if o == a {
			t.Errorf("different input gave the same id %s", a)
		}
	}
}

func TestResolvePlans(t *testing.T) {
	key := partitionKey{"t", 0}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	plan := func(id string, first, last int64, at time.Duration, st sink.Status) sink.Window {
		return sink.Window{ID: id, Status: st, PlannedAt: t0.Add(at),
			Ranges: []sink.Range{{Topic: "t", Partition: 0, First: first, Last: last}}}
	}
	tests := []struct {
		name  string
		plans []sink.Window
		want  []string
	}{
		{"disjoint kept in offset order", []sink.Window{
			plan("b", 100, 199, 2*time.Second, sink.StatusPlanned),
			plan("a", 0, 99, time.Second, sink.StatusWritten),
		}, []string{"a", "b"}},
		{"earlier plan wins an overlap", []sink.Window{
			plan("late", 0, 150, 2*time.Second, sink.StatusPlanned),
			plan("early", 0, 99, time.Second, sink.StatusPlanned),
			plan("next", 100, 199, 3*time.Second, sink.StatusPlanned),
		}, []string{"early", "next"}},
		{"same second: lower id wins", []sink.Window{
			plan("z", 0, 99, time.Second, sink.StatusPlanned),
			plan("y", 0, 120, time.Second, sink.StatusPlanned),
		}, []string{"y"}},
		{"a written window beats an earlier unwritten plan", []sink.Window{
			plan("crashed-loser", 0, 150, time.Second, sink.StatusPlanned),
			plan("written", 0, 99, 2*time.Second, sink.StatusWritten),
		}, []string{"written"}},
		{"a plan without a known PlannedAt sorts last", []sink.Window{
			{ID: "unknown", Status: sink.StatusPlanned, Ranges: []sink.Range{{Topic: "t", Partition: 0, First: 0, Last: 99}}},
			plan("known", 50, 150, 5*time.Second, sink.StatusPlanned),
		}, []string{"known"}},
		{"abandoned plans never win", []sink.Window{
			plan("gone", 0, 99, 0, sink.StatusAbandoned),
			plan("kept", 0, 120, time.Second, sink.StatusPlanned),
		}, []string{"kept"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolvePlans(tt.plans, key)
			var ids []string
			for _, g := range got {
				ids = append(ids, g.ID)
			}
			if len(ids) != len(tt.want) {
				t.Fatalf("got %v, want %v", ids, tt.want)
			}
			for i := range ids {
				if ids[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", ids, tt.want)
				}
			}
		})
	}
}
