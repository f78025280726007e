package sink

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestLedgerMergesDuplicateRows: rows of one key merge so that nothing
// lowers the spend: the largest epsilon and delta, the union of ranges
// (a row without ranges makes the key cover every record), and no
// parameters when rows disagree on them (only (epsilon, delta) is then
// composed).
func TestLedgerMergesDuplicateRows(t *testing.T) {
	r := func(first, last int64) Range { return Range{Topic: "t", Partition: 0, First: first, Last: last} }
	base := Charge{Group: "g", WindowID: "w", Attempt: "a", Epsilon: 1, Delta: 1e-6, Mechanism: "m", Params: `{"q":0.1}`,
		Ranges: []Range{r(0, 9)}}
	with := func(f func(*Charge)) Charge {
		ch := base
		ch.Ranges = append([]Range(nil), base.Ranges...)
		f(&ch)
		return ch
	}
	tests := []struct {
		name string
		rows []Charge
		want Charge
	}{
		{"identical rows", []Charge{base, base}, base},
		{"larger epsilon and delta win", []Charge{base, with(func(c *Charge) { c.Epsilon = 2 }), with(func(c *Charge) { c.Delta = 1e-5 })},
			with(func(c *Charge) { c.Epsilon, c.Delta = 2, 1e-5 })},
		{"ranges are united", []Charge{base, with(func(c *Charge) { c.Ranges = []Range{r(5, 14), r(0, 9)} })},
			with(func(c *Charge) { c.Ranges = []Range{r(0, 9), r(5, 14)} })},
		{"a row without ranges covers everything", []Charge{base, with(func(c *Charge) { c.Ranges = nil })},
			with(func(c *Charge) { c.Ranges = nil })},
		{"disagreeing params are dropped", []Charge{base, with(func(c *Charge) { c.Params = `{"q":0.2}` })},
			with(func(c *Charge) { c.Params = "" })},
		{"disagreeing mechanisms drop the params", []Charge{base, with(func(c *Charge) { c.Mechanism = "other" })},
			with(func(c *Charge) { c.Params = "" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := ledger{}
			for _, row := range tt.rows {
				l.add(row)
			}
			got := l.charges(nil)
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("merged %+v, want %+v", got, tt.want)
			}
			if !reflect.DeepEqual(tt.rows[0].Ranges, base.Ranges) {
				t.Errorf("merging changed the first row's ranges: %+v", tt.rows[0].Ranges)
			}
		})
	}
}

// TestFileLedgerReadsLinesWithoutRanges: a line written before ranges
// were recorded reads back as a charge without ranges (every record).
func TestFileLedgerReadsLinesWithoutRanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	old := `{"group_id":"g1","window_id":"w0","attempt":"a1","charged_at":"2026-01-01T00:00:00Z","epsilon":1,"delta":1e-06,"mechanism":"count","params":"{}","partitions":[0]}` + "\n"
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	var seen []Charge
	sp, err := FileLedger{Path: path}.Spent(testCtx(t), "g1", capture{&seen})
	if err != nil {
		t.Fatal(err)
	}
	if sp.Attempts != 1 || len(seen) != 1 || seen[0].Ranges != nil || seen[0].Epsilon != 1 || seen[0].Mechanism != "count" {
		t.Errorf("Spent %+v, charges %+v", sp, seen)
	}
}
