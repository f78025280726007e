package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSettle = 1200 * time.Millisecond

// seedPublished writes a written window with n synthetic rows; text(i) is
// row i's text.
func seedPublished(t *testing.T, c *Client, windowID string, n int, text func(i int) string) {
	t.Helper()
	ctx := testCtx(t)
	w := testWindow(windowID, Range{"in", 0, 0, 999})
	w.ClosedAt = time.Now().Truncate(time.Second)
	w.Records = 1000
	w.Attempt = "a1"
	if err := c.PlanWindow(ctx, w); err != nil {
		t.Fatal(err)
	}
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = Row{Seq: uint32(i), Text: text(i), Cluster: int32(i % 3), GeneratorVersion: "gen-1", Epsilon: 1.5, Delta: 1e-6}
	}
	if err := c.WriteWindow(ctx, w, rows); err != nil {
		t.Fatal(err)
	}
}

func plainText(i int) string { return fmt.Sprintf("synthetic instruction %d", i) }

func newQueueDB(t *testing.T, n int) *Client {
	t.Helper()
	c := newTestDB(t, true)
	seedPublished(t, c, "w1", n, plainText)
	added, err := c.Enqueue(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if added != n {
		t.Fatalf("Enqueue added %d, want %d", added, n)
	}
	return c
}

func claimReq(who string, n int, lease time.Duration) ClaimRequest {
	return ClaimRequest{Annotator: who, N: n, Lease: lease, Settle: testSettle}
}

func ids(items []QueueItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ItemID
	}
	sort.Strings(out)
	return out
}

func TestQueueDeriveItem(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	claim := func(r uint32, id string, s int) event {
		return event{Round: r, ClaimID: id, Annotator: "ann-" + id, Action: actionClaim, LeaseSeconds: 10, At: at(s)}
	}
	act := func(a string, r uint32, id string, s int) event {
		return event{Round: r, ClaimID: id, Action: a, At: at(s)}
	}
	tests := []struct {
		name      string
		evs       []event
		now       int
		status    string
		round     uint32
		holder    string
		byImport  bool
		leaseEnds int
	}{
		{"no events", nil, 0, QueueQueued, 0, "", false, 0},
		{"one claim", []event{claim(0, "a", 1)}, 2, QueueClaimed, 0, "a", false, 11},
		{"earliest wins", []event{claim(0, "b", 2), claim(0, "a", 3)}, 4, QueueClaimed, 0, "b", false, 12},
		{"same second: smaller id wins", []event{claim(0, "b", 2), claim(0, "a", 2)}, 4, QueueClaimed, 0, "a", false, 12},
		{"lease expired", []event{claim(0, "a", 1)}, 11, QueueQueued, 1, "", false, 0},
		{"next round claim", []event{claim(0, "a", 1), claim(1, "b", 11)}, 12, QueueClaimed, 1, "b", false, 21},
		{"next round claim before lease end ignored", []event{claim(0, "a", 1), claim(1, "b", 5)}, 12, QueueQueued, 1, "", false, 0},
		{"complete in lease", []event{claim(0, "a", 1), act(actionComplete, 0, "a", 10)}, 30, QueueDone, 0, "a", false, 11},
		{"complete at lease end refused", []event{claim(0, "a", 1), act(actionComplete, 0, "a", 11)}, 30, QueueQueued, 1, "", false, 0},
		{"complete by loser refused", []event{claim(0, "a", 1), claim(0, "b", 2), act(actionComplete, 0, "b", 3)}, 4, QueueClaimed, 0, "a", false, 11},
		{"release then claim", []event{claim(0, "a", 1), act(actionRelease, 0, "a", 3), claim(1, "b", 3)}, 4, QueueClaimed, 1, "b", false, 13},
		{"release", []event{claim(0, "a", 1), act(actionRelease, 0, "a", 3)}, 4, QueueQueued, 1, "", false, 0},
		{"late complete after new round", []event{claim(0, "a", 1), claim(1, "b", 12), act(actionComplete, 0, "a", 13)}, 14, QueueClaimed, 1, "b", false, 22},
		{"import ends a lease", []event{claim(0, "a", 1), act(actionImport, 0, "", 4)}, 5, QueueDone, 0, "", true, 0},
		{"import without claims", []event{act(actionImport, 0, "", 4)}, 5, QueueDone, 0, "", true, 0},
		{"complete before import", []event{claim(0, "a", 1), act(actionComplete, 0, "a", 3), act(actionImport, 0, "", 4)}, 5, QueueDone, 0, "a", false, 11},
		{"claim after import loses", []event{act(actionImport, 0, "", 4), claim(0, "a", 5)}, 6, QueueDone, 0, "", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := deriveItem(append([]event(nil), tt.evs...), at(tt.now))
			if st.Status != tt.status || st.Round != tt.round || st.ByImport != tt.byImport {
				t.Fatalf("state = %+v, want status %s round %d byImport %v", st, tt.status, tt.round, tt.byImport)
			}
			if tt.status != QueueQueued && st.ClaimID != tt.holder {
				t.Errorf("holder = %q, want %q", st.ClaimID, tt.holder)
			}
			if tt.leaseEnds != 0 && !st.LeaseUntil.Equal(at(tt.leaseEnds)) {
				t.Errorf("lease until %s, want %s", st.LeaseUntil, at(tt.leaseEnds))
			}
		})
	}
}

func TestQueueEnqueueIsIdempotent(t *testing.T) {
	t.Parallel()
	c := newQueueDB(t, 7)
	ctx := testCtx(t)
	added, err := c.Enqueue(ctx)
	if err != nil || added != 0 {
		t.Fatalf("second Enqueue = %d, %v; want 0", added, err)
	}
	seedPublished(t, c, "w2", 3, plainText)
	if added, err = c.Enqueue(ctx); err != nil || added != 3 {
		t.Fatalf("Enqueue after a new window = %d, %v; want 3", added, err)
	}
	p, err := c.Progress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p != (QueueProgress{Queued: 10}) {
		t.Errorf("progress = %+v, want 10 queued", p)
	}
	// The analysts' views.
	if n := count(t, c, "SELECT instructions FROM "+c.table("synthetic_per_window")+" WHERE window_id = 'w1'"); n != 7 {
		t.Errorf("synthetic_per_window w1 = %d, want 7", n)
	}
	if n := count(t, c, "SELECT sum(instructions) FROM "+c.table("cluster_sizes")+" WHERE window_id = 'w1' AND cluster = 0"); n != 3 {
		t.Errorf("cluster_sizes w1/0 = %d, want 3", n)
	}
}

func TestQueueClaimValidation(t *testing.T) {
	c := &Client{}
	tests := []struct {
		name string
		req  ClaimRequest
		want string
	}{
		{"no annotator", ClaimRequest{N: 1, Lease: time.Hour}, "annotator"},
		{"control character", ClaimRequest{Annotator: "a\x1b[2J", N: 1, Lease: time.Hour}, "annotator"},
		{"n zero", ClaimRequest{Annotator: "a", Lease: time.Hour}, "n must be positive"},
		{"short settle", ClaimRequest{Annotator: "a", N: 1, Lease: time.Hour, Settle: time.Second}, "settle must exceed 1s"},
		{"short lease", ClaimRequest{Annotator: "a", N: 1, Lease: 2 * time.Second}, "lease must be between"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Claim(context.Background(), tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Claim = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// Claimers in separate clients (separate connections, as separate processes
// would have) claim at the same moment: no item is ever given to two.
func TestQueueConcurrentClaimersNeverShareAnItem(t *testing.T) {
	t.Parallel()
	const items, claimers, each = 12, 3, 6
	c := newQueueDB(t, items)
	// In a cluster run, claimers alternate between two servers.
	dsns := []string{testDSN(t), peerDSN(t)}
	clients := make([]*Client, claimers)
	for i := range clients {
		clients[i] = openTestClient(t, dsns[i%2], c.Database())
	}
	results := make([]ClaimResult, claimers)
	errs := make([]error, claimers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = clients[i].Claim(testCtx(t), claimReq(fmt.Sprintf("annotator-%d", i), each, time.Minute))
		}()
	}
	close(start)
	wg.Wait()
	owner := map[string]int{}
	total := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("claimer %d: %v", i, errs[i])
		}
		if len(r.Items) > each {
			t.Errorf("claimer %d got %d items, asked for %d", i, len(r.Items), each)
		}
		for _, it := range r.Items {
			if prev, ok := owner[it.ItemID]; ok {
				t.Errorf("item %s given to claimers %d and %d", it.ItemID, prev, i)
			}
			owner[it.ItemID] = i
			if it.ClaimID != r.ClaimID || it.Status != QueueClaimed || it.Text == "" {
				t.Errorf("claimer %d item %+v", i, it)
			}
		}
		total += len(r.Items)
		t.Logf("claimer %d: %d items, %d contended", i, len(r.Items), r.Contended)
	}
	if total == 0 {
		t.Fatal("nobody got anything")
	}
	// A fresh reader agrees on every holder.
	all := make([]string, 0, len(owner))
	for id := range owner {
		all = append(all, id)
	}
	states, _, err := c.itemStates(testCtx(t), all)
	if err != nil {
		t.Fatal(err)
	}
	for id, i := range owner {
		if st := states[id]; st.Status != QueueClaimed || st.ClaimID != results[i].ClaimID {
			t.Errorf("item %s: derived %+v, claimer %d holds it", id, st, i)
		}
	}
	p, err := c.Progress(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Claimed != uint64(total) || p.Total() != items {
		t.Errorf("progress %+v, want %d claimed of %d", p, total, items)
	}
}

func TestQueueLeaseExpiryReturnsItems(t *testing.T) {
	t.Parallel()
	c := newQueueDB(t, 3)
	ctx := testCtx(t)
	first, err := c.Claim(ctx, claimReq("alice", 10, 4*time.Second))
	if err != nil || len(first.Items) != 3 {
		t.Fatalf("first claim: %d items, %v", len(first.Items), err)
	}
	none, err := c.Claim(ctx, claimReq("bob", 10, time.Minute))
	if err != nil || len(none.Items) != 0 {
		t.Fatalf("claim while leased: %d items, %v; want none", len(none.Items), err)
	}
	time.Sleep(time.Until(first.LeaseUntil) + 1500*time.Millisecond)
	if p, err := c.Progress(ctx); err != nil || p.Queued != 3 {
		t.Errorf("progress after expiry = %+v, %v; want 3 queued", p, err)
	}
	second, err := c.Claim(ctx, claimReq("bob", 10, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(second.Items), ids(first.Items); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after expiry bob got %v, want %v", got, want)
	}
	for _, it := range second.Items {
		if it.Round != 1 {
			t.Errorf("item %s in round %d, want 1", it.ItemID, it.Round)
		}
	}
	// alice's lease is gone: her completion is refused.
	res, err := c.Complete(ctx, first.ClaimID, nil)
	if err == nil && len(res.Done) > 0 {
		t.Fatalf("expired holder completed %v", res.Done)
	}
	res, err = c.Complete(ctx, first.ClaimID, ids(first.Items))
	if !errors.Is(err, ErrNotLeaseHolder) || len(res.Done) != 0 {
		t.Fatalf("Complete by expired holder = %+v, %v; want ErrNotLeaseHolder", res, err)
	}
	for id, why := range res.Refused {
		if why != "held by another claim" {
			t.Errorf("%s refused as %q", id, why)
		}
	}
}

func TestQueueCompleteOnlyByHolder(t *testing.T) {
	t.Parallel()
	c := newQueueDB(t, 4)
	ctx := testCtx(t)
	a, err := c.Claim(ctx, claimReq("alice", 2, time.Minute))
	if err != nil || len(a.Items) != 2 {
		t.Fatalf("alice: %d items, %v", len(a.Items), err)
	}
	b, err := c.Claim(ctx, claimReq("bob", 2, time.Minute))
	if err != nil || len(b.Items) != 2 {
		t.Fatalf("bob: %d items, %v", len(b.Items), err)
	}
	aliceItems := ids(a.Items)

	tests := []struct {
		name    string
		claim   string
		items   []string
		done    int
		refused map[string]string
	}{
		{"other claimer", b.ClaimID, aliceItems[:1], 0, map[string]string{aliceItems[0]: "held by another claim"}},
		{"unknown claim", "cdeadbeef", aliceItems[:1], 0, map[string]string{aliceItems[0]: "held by another claim"}},
		{"not in queue", a.ClaimID, []string{"nope-1"}, 0, map[string]string{"nope-1": "not in the queue"}},
		{"holder", a.ClaimID, aliceItems[:1], 1, nil},
		{"holder again", a.ClaimID, aliceItems[:1], 0, map[string]string{aliceItems[0]: "already done"}},
		{"holder, all it holds", a.ClaimID, nil, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Complete(ctx, tt.claim, tt.items)
			if len(res.Done) != tt.done {
				t.Errorf("done %v, want %d", res.Done, tt.done)
			}
			if len(tt.refused) > 0 {
				if !errors.Is(err, ErrNotLeaseHolder) {
					t.Errorf("err = %v, want ErrNotLeaseHolder", err)
				}
				for id, why := range tt.refused {
					if res.Refused[id] != why {
						t.Errorf("refused[%s] = %q, want %q", id, res.Refused[id], why)
					}
				}
			} else if err != nil {
				t.Errorf("err = %v", err)
			}
		})
	}
	p, err := c.Progress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p != (QueueProgress{Claimed: 2, Done: 2}) {
		t.Errorf("progress = %+v, want 2 claimed, 2 done", p)
	}
	// Done items are never claimed again.
	if r, err := c.Claim(ctx, claimReq("carol", 4, time.Minute)); err != nil || len(r.Items) != 0 {
		t.Errorf("carol got %d items, %v; want none", len(r.Items), err)
	}
}

func TestQueueReleaseReturnsItems(t *testing.T) {
	t.Parallel()
	c := newQueueDB(t, 2)
	ctx := testCtx(t)
	a, err := c.Claim(ctx, claimReq("alice", 2, time.Hour))
	if err != nil || len(a.Items) != 2 {
		t.Fatalf("alice: %d items, %v", len(a.Items), err)
	}
	res, err := c.Release(ctx, a.ClaimID, nil)
	if err != nil || len(res.Done) != 2 {
		t.Fatalf("Release = %+v, %v", res, err)
	}
	b, err := c.Claim(ctx, claimReq("bob", 5, time.Hour))
	if err != nil || len(b.Items) != 2 {
		t.Fatalf("bob after release: %d items, %v", len(b.Items), err)
	}
	if _, err := c.Complete(ctx, a.ClaimID, ids(a.Items)); !errors.Is(err, ErrNotLeaseHolder) {
		t.Errorf("Complete after release = %v, want ErrNotLeaseHolder", err)
	}
}

func TestExportEscapesAndCarriesMetadata(t *testing.T) {
	t.Parallel()
	c := newTestDB(t, true)
	const hostile = `<script>alert("x")</script> & ` + "\u2028" + ` done`
	seedPublished(t, c, "wx", 2, func(i int) string { return fmt.Sprintf("%s %d", hostile, i) })
	ctx := testCtx(t)
	if _, err := c.Enqueue(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := c.Claim(ctx, claimReq("alice", 1, time.Hour))
	if err != nil || len(cl.Items) != 1 {
		t.Fatalf("claim: %d items, %v", len(cl.Items), err)
	}
	tests := []struct {
		name   string
		filter ExportFilter
		n      int
	}{
		{"by claim", ExportFilter{ClaimID: cl.ClaimID}, 1},
		{"all", ExportFilter{Status: "all"}, 2},
		{"queued", ExportFilter{Status: QueueQueued}, 1},
		{"claimed", ExportFilter{Status: QueueClaimed}, 1},
		{"done", ExportFilter{Status: QueueDone}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := c.ExportItems(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != tt.n {
				t.Fatalf("%d items, want %d", len(items), tt.n)
			}
			for _, enc := range []func(*bytes.Buffer) error{
				func(b *bytes.Buffer) error { return EncodeLabelStudio(b, items) },
				func(b *bytes.Buffer) error { return EncodeJSONL(b, items) },
			} {
				var buf bytes.Buffer
				if err := enc(&buf); err != nil {
					t.Fatal(err)
				}
				out := buf.String()
				for _, raw := range []string{"<script>", "</script>", " & ", "\u2028"} {
					if strings.Contains(out, raw) {
						t.Errorf("export holds %q unescaped", raw)
					}
				}
				if tt.n > 0 && !strings.Contains(out, `\u003cscript\u003e`) {
					t.Errorf("export lacks the escaped <script>:\n%s", out)
				}
			}
			var buf bytes.Buffer
			if err := EncodeLabelStudio(&buf, items); err != nil {
				t.Fatal(err)
			}
			var tasks []struct {
				ID   int `json:"id"`
				Data struct {
					Text     string `json:"text"`
					ItemID   string `json:"item_id"`
					WindowID string `json:"window_id"`
					Cluster  *int32 `json:"cluster"`
					ClaimID  string `json:"claim_id"`
				} `json:"data"`
				Meta map[string]any `json:"meta"`
			}
			if err := json.Unmarshal(buf.Bytes(), &tasks); err != nil {
				t.Fatal(err)
			}
			for i, task := range tasks {
				d := task.Data
				if !strings.HasPrefix(d.Text, hostile) || d.WindowID != "wx" || d.Cluster == nil || d.ItemID == "" || task.ID != i+1 {
					t.Errorf("task %d = %+v", i, task)
				}
				if task.Meta["window_id"] != "wx" || task.Meta["cluster"] == nil || task.Meta["epsilon"] != 1.5 {
					t.Errorf("task %d meta = %v", i, task.Meta)
				}
				if tt.filter.ClaimID != "" && (d.ClaimID != cl.ClaimID || task.Meta["claim_id"] != cl.ClaimID) {
					t.Errorf("task %d lacks its claim id", i)
				}
			}
		})
	}
}

// labelStudioExport turns exported tasks into what Label Studio's JSON
// export of the annotated project looks like.
func labelStudioExport(t *testing.T, exported []byte, annotate func(i int) []map[string]any) []byte {
	t.Helper()
	var tasks []map[string]any
	if err := json.Unmarshal(exported, &tasks); err != nil {
		t.Fatal(err)
	}
	for i, task := range tasks {
		task["id"] = 100 + i
		task["annotations"] = annotate(i)
		task["predictions"] = []any{}
		task["project"] = 7
	}
	b, err := json.Marshal(tasks)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImportRoundTripAndReimport(t *testing.T) {
	t.Parallel()
	c := newQueueDB(t, 3)
	ctx := testCtx(t)
	cl, err := c.Claim(ctx, claimReq("alice", 3, time.Hour))
	if err != nil || len(cl.Items) != 3 {
		t.Fatalf("claim: %d items, %v", len(cl.Items), err)
	}
	items, err := c.ExportItems(ctx, ExportFilter{ClaimID: cl.ClaimID})
	if err != nil {
		t.Fatal(err)
	}
	var exp bytes.Buffer
	if err := EncodeLabelStudio(&exp, items); err != nil {
		t.Fatal(err)
	}
	file := labelStudioExport(t, exp.Bytes(), func(i int) []map[string]any {
		anns := []map[string]any{{
			"id": 500 + i, "completed_by": map[string]any{"id": 3, "email": "alice@example.com"},
			"result":        []any{map[string]any{"from_name": "quality", "to_name": "text", "type": "choices", "value": map[string]any{"choices": []string{"good"}}}},
			"was_cancelled": false,
		}}
		if i == 0 { // a cancelled annotation is not imported
			anns = append(anns, map[string]any{"id": 900, "completed_by": 4, "result": []any{}, "was_cancelled": true})
		}
		return anns
	})
	anns, err := DecodeLabelStudio(bytes.NewReader(file), DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(anns) != 3 {
		t.Fatalf("decoded %d annotations, want 3", len(anns))
	}
	for _, a := range anns {
		if a.Annotator != "alice@example.com" || a.ClaimID != cl.ClaimID || !strings.HasPrefix(a.AnnotationID, "ls-5") ||
			!strings.Contains(a.Label, `"choices":["good"]`) {
			t.Errorf("annotation %+v", a)
		}
	}
	for round := 1; round <= 2; round++ {
		res, err := c.ImportAnnotations(ctx, "labelstudio", anns)
		if err != nil {
			t.Fatalf("import %d: %v", round, err)
		}
		wantDone := 3
		if round == 2 {
			wantDone = 0
		}
		if res.Annotations != 3 || res.Items != 3 || res.NewlyDone != wantDone {
			t.Errorf("import %d = %+v, want 3 annotations, 3 items, %d newly done", round, res, wantDone)
		}
		if n := count(t, c, "SELECT count() FROM "+c.table("annotations")+" FINAL"); n != 3 {
			t.Errorf("after import %d: %d annotations under FINAL, want 3", round, n)
		}
	}
	if p, err := c.Progress(ctx); err != nil || p != (QueueProgress{Done: 3}) {
		t.Errorf("progress = %+v, %v; want 3 done", p, err)
	}
	// The holder's completion after the import: already done.
	if res, err := c.Complete(ctx, cl.ClaimID, ids(cl.Items)); !errors.Is(err, ErrNotLeaseHolder) || res.Refused[ids(cl.Items)[0]] != "already done" {
		t.Errorf("Complete after import = %+v, %v", res, err)
	}

	// JSONL: an annotation of an unknown item is refused as a whole, with
	// its line number and not its text.
	bad := "{\"item_id\":\"" + items[0].ItemID + "\",\"annotator\":\"bob\",\"label\":{\"ok\":true}}\n" +
		"{\"item_id\":\"no-such-item-SECRET\",\"annotator\":\"bob\",\"label\":1}\n"
	anns, err = DecodeJSONL(strings.NewReader(bad), DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ImportAnnotations(ctx, "jsonl", anns)
	if !errors.Is(err, ErrBadImport) || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("import of an unknown item = %v", err)
	}
	if n := count(t, c, "SELECT count() FROM "+c.table("annotations")+" FINAL"); n != 3 {
		t.Errorf("a refused import wrote rows: %d annotations", n)
	}
	anns, err = DecodeJSONL(strings.NewReader(strings.SplitAfter(bad, "\n")[0]), DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.ImportAnnotations(ctx, "jsonl", anns); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, c, "SELECT count() FROM "+c.table("annotations")+" FINAL"); n != 4 {
		t.Errorf("after jsonl import: %d annotations, want 4", n)
	}
}
