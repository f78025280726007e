package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/sink"
)

func TestQueueExportImportHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{"queue", "export", "import"}},
		{[]string{"queue", "--help"}, []string{"claim", "complete", "release", "progress", "fill", "export --claim", "Label Studio"}},
		{[]string{"queue", "claim", "--help"}, []string{"--n", "--annotator", "--lease", "30m", "--settle", "--clickhouse", "never get the same\nitem", "claim=<id>"}},
		{[]string{"queue", "complete", "--help"}, []string{"--claim", "--item", "Only the current lease holder", "refused <item>"}},
		{[]string{"queue", "release", "--help"}, []string{"--claim", "--item"}},
		{[]string{"queue", "progress", "--help"}, []string{"queued=<n> claimed=<n> done=<n>"}},
		{[]string{"queue", "fill", "--help"}, []string{"published_instructions", "--clickhouse"}},
		{[]string{"export", "--help"}, []string{"--format", "labelstudio", "jsonl", "--out", "--status", "--claim", `\u003c`, "window_id", "cluster"}},
		{[]string{"import", "--help"}, []string{"--file", "--format", "--max-bytes", "completed_by", "never quotes", "annotations table"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{"dpinstruct"}, tt.args...), " "), func(t *testing.T) {
			run := startProc(t, nil, tt.args...)
			if code := run.wait(30 * time.Second); code != 0 {
				t.Fatalf("exit %d:\n%s", code, run.output())
			}
			for _, w := range tt.want {
				if !strings.Contains(run.output(), w) {
					t.Errorf("help lacks %q", w)
				}
			}
		})
	}
}

func TestQueueBadFlagsExit2(t *testing.T) {
	tests := [][]string{
		{"queue", "claim", "--annotator", "a"},
		{"queue", "claim", "--n", "3"},
		{"queue", "claim", "--n", "3", "--annotator", "a", "--settle", "1s"},
		{"queue", "complete"},
		{"export", "--format", "csv"},
		{"export", "--status", "lost"},
		{"export", "--claim", "c1", "--status", "queued"},
		{"import"},
		{"import", "--file", "x", "--format", "xml"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			run := startProc(t, nil, args...)
			if code := run.wait(30 * time.Second); code != 2 {
				t.Errorf("exit %d, want 2:\n%s", code, run.output())
			}
		})
	}
}

// seedQueueDB migrates a fresh database and publishes one window of n rows.
func seedQueueDB(t *testing.T, n int, text func(int) string) string {
	t.Helper()
	dsn, _, _ := freshDatabase(t, needClickHouse(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ch, err := sink.Open(ctx, sink.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	w := sink.Window{ID: "win-1", Group: "g", Attempt: "a1", Ranges: []sink.Range{{Topic: "in", First: 0, Last: 99}},
		Records: 100, ConfiguredRecords: 100, ClosedAt: time.Now()}
	if err := ch.PlanWindow(ctx, w); err != nil {
		t.Fatal(err)
	}
	rows := make([]sink.Row, n)
	for i := range rows {
		rows[i] = sink.Row{Seq: uint32(i), Text: text(i), Cluster: int32(i % 2), GeneratorVersion: "g1", Epsilon: 4, Delta: 1e-6}
	}
	if err := ch.WriteWindow(ctx, w, rows); err != nil {
		t.Fatal(err)
	}
	return dsn
}

var claimLine = regexp.MustCompile(`claim=(c[0-9a-f]+) items=(\d+)`)
var itemLine = regexp.MustCompile(`(?m)^(win-1-\d+) window=win-1 cluster=\d$`)

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	run := startProc(t, nil, args...)
	if code := run.wait(60 * time.Second); code != 0 {
		t.Fatalf("dpinstruct %s: exit %d:\n%s", strings.Join(args, " "), code, run.output())
	}
	return run.output()
}

// Two `dpinstruct queue claim` processes started together never get the same
// item; then export, Label Studio round trip, import, progress.
func TestQueueClaimProcessesExportImport(t *testing.T) {
	const n = 10
	const hostile = `<script>alert(1)</script>`
	dsn := seedQueueDB(t, n, func(i int) string { return fmt.Sprintf("%s instruction %d", hostile, i) })
	ch := []string{"--clickhouse", dsn}

	if out := runOK(t, append([]string{"queue", "fill"}, ch...)...); !strings.Contains(out, "queued 10 new items") {
		t.Fatalf("fill: %s", out)
	}
	procs := make([]*proc, 2)
	for i := range procs {
		procs[i] = startProc(t, nil, append([]string{"queue", "claim", "--n", "7", "--annotator", fmt.Sprintf("ann-%d", i),
			"--settle", "1200ms", "--lease", "1h"}, ch...)...)
	}
	owner := map[string]int{}
	claims := make([]string, 2)
	for i, p := range procs {
		if code := p.wait(60 * time.Second); code != 0 {
			t.Fatalf("claimer %d: exit %d:\n%s", i, code, p.output())
		}
		m := claimLine.FindStringSubmatch(p.output())
		if m == nil {
			t.Fatalf("claimer %d printed no claim line:\n%s", i, p.output())
		}
		claims[i] = m[1]
		got := itemLine.FindAllStringSubmatch(p.output(), -1)
		if fmt.Sprint(len(got)) != m[2] {
			t.Errorf("claimer %d: items=%s but %d item lines", i, m[2], len(got))
		}
		for _, g := range got {
			if prev, ok := owner[g[1]]; ok {
				t.Errorf("item %s claimed by processes %d and %d", g[1], prev, i)
			}
			owner[g[1]] = i
		}
	}
	if len(owner) < 7 {
		t.Errorf("only %d items claimed in all", len(owner))
	}

	// Completion by the other claim is refused, exit 1.
	var aliceItem string
	for id, i := range owner {
		if i == 0 {
			aliceItem = id
			break
		}
	}
	if aliceItem != "" {
		run := startProc(t, nil, append([]string{"queue", "complete", "--claim", claims[1], "--item", aliceItem}, ch...)...)
		if code := run.wait(60 * time.Second); code != 1 || !strings.Contains(run.output(), "refused "+aliceItem+": held by another claim") {
			t.Errorf("complete by another claim: exit %d:\n%s", code, run.output())
		}
	}

	// Export claimer 0's items for Label Studio.
	dir := t.TempDir()
	tasksFile := filepath.Join(dir, "tasks.json")
	runOK(t, append([]string{"export", "--claim", claims[0], "--format", "labelstudio", "--out", tasksFile}, ch...)...)
	raw, err := os.ReadFile(tasksFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "<script>") || !strings.Contains(string(raw), `\u003cscript\u003e`) {
		t.Errorf("export does not escape <script>:\n%s", raw)
	}
	var tasks []map[string]any
	if err := json.Unmarshal(raw, &tasks); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, i := range owner {
		if i == 0 {
			want++
		}
	}
	if len(tasks) != want {
		t.Fatalf("exported %d tasks, claimer 0 holds %d", len(tasks), want)
	}
	for i, task := range tasks {
		data := task["data"].(map[string]any)
		meta := task["meta"].(map[string]any)
		if data["window_id"] != "win-1" || data["cluster"] == nil || meta["window_id"] != "win-1" || meta["cluster"] == nil ||
			!strings.HasPrefix(data["text"].(string), hostile) {
			t.Errorf("task %d = %v", i, task)
		}
		// What Label Studio's export adds.
		task["annotations"] = []any{map[string]any{"id": 1000 + i, "completed_by": 1, "was_cancelled": false,
			"result": []any{map[string]any{"type": "choices", "value": map[string]any{"choices": []string{"fine"}}}}}}
	}
	lsFile := filepath.Join(dir, "project-export.json")
	b, _ := json.Marshal(tasks)
	if err := os.WriteFile(lsFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		out := runOK(t, append([]string{"import", "--file", lsFile}, ch...)...)
		newly := want
		if round == 1 {
			newly = 0
		}
		if !strings.Contains(out, fmt.Sprintf("imported %d annotations of %d items (%d newly done)", want, want, newly)) {
			t.Errorf("import %d: %s", round, out)
		}
	}
	out := runOK(t, append([]string{"queue", "progress"}, ch...)...)
	if !strings.Contains(out, fmt.Sprintf("claimed=%d done=%d total=10", len(owner)-want, want)) {
		t.Errorf("progress: %s", out)
	}
	// JSONL export of done items carries the annotator-facing fields.
	out = runOK(t, append([]string{"export", "--status", "done", "--format", "jsonl"}, ch...)...)
	if lines := strings.Count(out, "\n"); lines != want || strings.Contains(out, "<script>") {
		t.Errorf("jsonl export: %d lines:\n%s", lines, out)
	}

	// A hostile import file: exit 2, and the message never quotes it.
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"item_id\":\"x\",\"annotator\":\"\x1b[31mSECRET\",\"label\":1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := startProc(t, nil, append([]string{"import", "--file", bad}, ch...)...)
	if code := run.wait(30 * time.Second); code != 2 || strings.Contains(run.output(), "SECRET") || !strings.Contains(run.output(), "line 1") {
		t.Errorf("bad import: exit %d:\n%s", code, run.output())
	}
}
