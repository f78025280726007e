package sink

import (
	"fmt"
	"testing"
	"time"
)

func TestWriteWindowIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rows  int
		calls int
	}{
		{"empty window", 0, 2},
		{"single row once", 1, 1},
		{"replayed", 500, 2},
		{"replayed three times", 50, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newTestDB(t, true)
			ctx := testCtx(t)
			w := testWindow("ww", Range{"in", 0, 0, 999})
			w.ClosedAt = time.Now().Truncate(time.Second)
			w.Records = 1000
			if err := c.PlanWindow(ctx, w); err != nil {
				t.Fatal(err)
			}
			rows := make([]Row, tt.rows)
			for i := range rows {
				rows[i] = Row{Seq: uint32(i), Text: fmt.Sprintf("synthetic %d", i), Cluster: int32(i % 7),
					GeneratorVersion: "gen-1", Epsilon: 1.5, Delta: 1e-6}
			}
			for range tt.calls {
				if err := c.WriteWindow(ctx, w, rows); err != nil {
					t.Fatalf("WriteWindow: %v", err)
				}
			}
			tbl := c.table("synthetic_instructions")
			if n := count(t, c, "SELECT count() FROM "+tbl+" FINAL"); n != uint64(tt.rows) {
				t.Errorf("rows under FINAL = %d, want %d", n, tt.rows)
			}
			if n := count(t, c, "SELECT uniqExact(id) FROM "+tbl+" FINAL"); n != uint64(tt.rows) {
				t.Errorf("distinct ids = %d, want %d", n, tt.rows)
			}
			if tt.rows > 0 {
				// created_at comes from the window, not the wall clock, so
				// replays write identical rows.
				if n := count(t, c, "SELECT count() FROM "+tbl+" FINAL WHERE created_at = toDateTime(?)", w.ClosedAt.Unix()); n != uint64(tt.rows) {
					t.Errorf("rows with created_at = ClosedAt: %d, want %d", n, tt.rows)
				}
			}
			got, ok, err := c.Window(ctx, w.ID)
			if err != nil || !ok {
				t.Fatalf("Window: %v %v", ok, err)
			}
			if got.Status != StatusWritten || got.OutputRows != uint64(tt.rows) || got.Records != 1000 ||
				got.WrittenAt.IsZero() || !got.ClosedAt.Equal(w.ClosedAt) {
				t.Errorf("window after write = %+v", got)
			}
		})
	}
}

// A window processed twice (a crash after its rows but before it was
// marked written, then a replay) publishes only the attempt the written
// row names, never a mix of the two.
func TestPublishedInstructionsShowOneAttempt(t *testing.T) {
	c := newTestDB(t, true)
	ctx := testCtx(t)
	w := testWindow("wa", Range{"in", 0, 0, 99})
	if err := c.PlanWindow(ctx, w); err != nil {
		t.Fatal(err)
	}
	rows := func(n int, tag string) []Row {
		out := make([]Row, n)
		for i := range out {
			out[i] = Row{Seq: uint32(i), Text: fmt.Sprintf("%s %d", tag, i)}
		}
		return out
	}
	// The first attempt's rows land, but its written mark is superseded
	// by the second attempt's (a later version of the same window row).
	w.Attempt = "first"
	if err := c.WriteWindow(ctx, w, rows(5, "first")); err != nil {
		t.Fatal(err)
	}
	w.Attempt = "second"
	if err := c.WriteWindow(ctx, w, rows(3, "second")); err != nil {
		t.Fatal(err)
	}
	view := c.table("published_instructions")
	if n := count(t, c, "SELECT count() FROM "+view); n != 3 {
		t.Errorf("published rows = %d, want the second attempt's 3", n)
	}
	if n := count(t, c, "SELECT count() FROM "+view+" WHERE attempt != 'second'"); n != 0 {
		t.Errorf("%d published rows come from another attempt", n)
	}
	got, _, err := c.Window(ctx, w.ID)
	if err != nil || got.Attempt != "second" || got.OutputRows != 3 {
		t.Errorf("window = %+v, %v; want attempt second with 3 rows", got, err)
	}
}
