package sink

import (
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestPlanVisibleToOtherClientImmediately(t *testing.T) {
	t.Parallel()
	a := newTestDB(t, true)
	b := openTestClient(t, peerDSN(t), a.Database())
	ctx := testCtx(t)

	w := testWindow("w-1",
		Range{Topic: "in", Partition: 0, First: 100, Last: 199},
		Range{Topic: "in", Partition: 1, First: 50, Last: 80})
	before := time.Now().Add(-2 * time.Second)
	if err := a.PlanWindow(ctx, w); err != nil {
		t.Fatalf("PlanWindow: %v", err)
	}
	plans, err := b.Plans(ctx, "g1", "in", 0, 150)
	if err != nil {
		t.Fatalf("Plans: %v", err)
	}
	if len(plans) != 1 {
		t.Fatalf("Plans returned %d windows, want 1: %+v", len(plans), plans)
	}
	got := plans[0]
	if got.ID != w.ID || got.Status != StatusPlanned || got.Owner != "worker-a" ||
		!got.LeaseUntil.Equal(w.LeaseUntil) || !got.OpenedAt.Equal(w.OpenedAt) ||
		got.Params != w.Params || got.Epsilon != w.Epsilon || got.ConfiguredRecords != 1000 {
		t.Errorf("plan = %+v, want fields of %+v", got, w)
	}
	wantRanges := []Range{{"in", 0, 100, 199}, {"in", 1, 50, 80}}
	if !reflect.DeepEqual(got.Ranges, wantRanges) {
		t.Errorf("ranges = %+v, want %+v", got.Ranges, wantRanges)
	}
	if got.PlannedAt.Before(before) || got.PlannedAt.After(time.Now().Add(2*time.Second)) {
		t.Errorf("PlannedAt = %v, want server time close to now", got.PlannedAt)
	}
	if !got.ClosedAt.IsZero() || !got.WrittenAt.IsZero() {
		t.Errorf("unset times should read back as zero: closed=%v written=%v", got.ClosedAt, got.WrittenAt)
	}

	one, ok, err := b.Window(ctx, "w-1")
	if err != nil || !ok || !reflect.DeepEqual(one, got) {
		t.Errorf("Window(w-1) = %+v, %v, %v; want %+v", one, ok, err, got)
	}
	if _, ok, err := b.Window(ctx, "nope"); ok || err != nil {
		t.Errorf("Window(nope) = found %v, err %v", ok, err)
	}
}

func TestPlansFilter(t *testing.T) {
	t.Parallel()
	c := newTestDB(t, true)
	ctx := testCtx(t)
	for _, w := range []Window{
		testWindow("old", Range{"in", 0, 0, 99}),
		testWindow("cur", Range{"in", 0, 100, 199}),
		testWindow("next", Range{"in", 0, 200, 299}),
		testWindow("other-part", Range{"in", 1, 100, 199}),
		testWindow("other-topic", Range{"in2", 0, 100, 199}),
	} {
		if err := c.PlanWindow(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	other := testWindow("other-group", Range{"in", 0, 100, 199})
	other.Group = "g2"
	if err := c.PlanWindow(ctx, other); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		from int64
		want []string
	}{
		{0, []string{"old", "cur", "next"}},
		{99, []string{"old", "cur", "next"}},
		{100, []string{"cur", "next"}},
		{250, []string{"next"}},
		{300, nil},
	}
	for _, tt := range tests {
		plans, err := c.Plans(ctx, "g1", "in", 0, tt.from)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range plans {
			ids = append(ids, p.ID)
		}
		if !reflect.DeepEqual(ids, tt.want) {
			t.Errorf("Plans(from=%d) = %v, want %v", tt.from, ids, tt.want)
		}
	}
}

// TestStatusPrecedence: the status with the highest rank wins whatever the
// order of the updates; renewals only change planned windows.
func TestStatusPrecedence(t *testing.T) {
	t.Parallel()
	c := newTestDB(t, true)
	// A second client issues the late updates, as another worker would.
	late := openTestClient(t, peerDSN(t), c.Database())

	type step string
	const (
		renew   step = "renew"
		abandon step = "abandon"
		write   step = "write"
	)
	tests := []struct {
		name       string
		steps      []step
		wantStatus Status
		wantOwner  string
	}{
		{"plan only", nil, StatusPlanned, "worker-a"},
		{"renewal by new owner", []step{renew}, StatusPlanned, "worker-b"},
		{"written beats later renewal", []step{write, renew}, StatusWritten, "worker-a"},
		{"written beats later abandon", []step{write, abandon}, StatusWritten, "worker-a"},
		{"abandoned beats later renewal", []step{abandon, renew}, StatusAbandoned, "worker-a"},
		{"written after abandon", []step{abandon, write}, StatusWritten, "worker-a"},
	}
	for i, tt := range tests {
		ctx := testCtx(t)
		w := testWindow("prec-"+string(rune('a'+i)), Range{"in", 0, int64(i * 10), int64(i*10 + 9)})
		if err := c.PlanWindow(ctx, w); err != nil {
			t.Fatal(err)
		}
		for _, s := range tt.steps {
			var err error
			switch s {
			case renew:
				err = late.RenewLease(ctx, w, "worker-b", time.Now().Add(time.Hour))
			case abandon:
				err = late.Abandon(ctx, w)
			case write:
				w.ClosedAt = time.Now()
				err = c.WriteWindow(ctx, w, []Row{{Seq: 0, Text: "synthetic"}})
			}
			if err != nil {
				t.Fatalf("%s: %s: %v", tt.name, s, err)
			}
		}
		got, ok, err := late.Window(ctx, w.ID)
		if err != nil || !ok {
			t.Fatalf("%s: Window: %v %v", tt.name, ok, err)
		}
		if got.Status != tt.wantStatus || got.Owner != tt.wantOwner {
			t.Errorf("%s: status=%s owner=%s, want %s %s", tt.name, got.Status, got.Owner, tt.wantStatus, tt.wantOwner)
		}
	}
}

// TestConcurrentOverlappingPlans: two workers plan overlapping ranges at the
// same time; both plans are visible, with server-assigned PlannedAt, in a
// deterministic order every reader agrees on.
func TestConcurrentOverlappingPlans(t *testing.T) {
	t.Parallel()
	a := newTestDB(t, true)
	b := openTestClient(t, peerDSN(t), a.Database())
	ctx := testCtx(t)

	wa := testWindow("conc-a", Range{"in", 3, 1000, 1999})
	wb := testWindow("conc-b", Range{"in", 3, 1500, 2499})
	wb.Owner = "worker-b"
	// Deliberately skewed client clocks must not matter: planned_at is
	// assigned by the server.
	wa.OpenedAt = time.Now().Add(24 * time.Hour)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	start := make(chan struct{})
	for i, pair := range []struct {
		c *Client
		w Window
	}{{a, wa}, {b, wb}} {
		wg.Go(func() {
			<-start
			errs[i] = pair.c.PlanWindow(ctx, pair.w)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("PlanWindow %d: %v", i, err)
		}
	}

	var serverNow time.Time
	if err := a.Conn().QueryRow(ctx, "SELECT now()").Scan(&serverNow); err != nil {
		t.Fatal(err)
	}
	for _, reader := range []*Client{a, b} {
		plans, err := reader.Plans(ctx, "g1", "in", 3, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(plans) != 2 || plans[0].ID != "conc-a" || plans[1].ID != "conc-b" {
			t.Fatalf("Plans = %+v, want conc-a then conc-b (ordered by first offset)", plans)
		}
		for _, p := range plans {
			if p.PlannedAt.IsZero() || p.PlannedAt.After(serverNow) || serverNow.Sub(p.PlannedAt) > time.Minute {
				t.Errorf("%s PlannedAt = %v, want server time <= %v", p.ID, p.PlannedAt, serverNow)
			}
		}
	}

	// Same first offset: order falls back to PlannedAt, then ID.
	wc := testWindow("conc-c", Range{"in", 3, 1000, 1099})
	if err := b.PlanWindow(ctx, wc); err != nil {
		t.Fatal(err)
	}
	plans, err := a.Plans(ctx, "g1", "in", 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range plans {
		ids = append(ids, p.ID)
	}
	// conc-c has the same first offset as conc-a; it was planned no earlier,
	// and its ID sorts after, so it comes second either way.
	if want := []string{"conc-a", "conc-c", "conc-b"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("Plans order = %v, want %v", ids, want)
	}
}
