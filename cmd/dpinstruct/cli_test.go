package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/internal/golden"
)

// goldenText compares got with testdata/name, or rewrites it with -update.
func goldenText(t *testing.T, name, got string) {
	t.Helper()
	if want := golden.Read(t, filepath.Join("testdata", name), []byte(got)); got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestConfigCheckPrintsEffectiveConfig(t *testing.T) {
	run := startProc(t, []string{"DPINSTRUCT_INSTANCE=golden-0", "DPINSTRUCT_CLICKHOUSE_DSN=clickhouse://u:hunter2@h:9000/db"},
		"config", "check", "--config", "../../deploy/local/example.yaml")
	if code := run.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, run.output())
	}
	if strings.Contains(run.output(), "hunter2") {
		t.Error("config check printed the ClickHouse password")
	}
	goldenText(t, "config-check.golden", run.output())
}

func TestHelpTeachesEveryCommand(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{"broker", "produce", "run", "migrate", "make demo"}},
		{[]string{"broker", "--help"}, []string{"--listen", "--partitions", "SIGTERM"}},
		{[]string{"produce", "--help"}, []string{"--brokers", "--topic", "--file", "--key", "user_id"}},
		{[]string{"run", "--help"}, []string{"--config", "--max-windows", "DPINSTRUCT_", "Exit codes"}},
		{[]string{"migrate", "--help"}, []string{"--clickhouse", "18.16"}},
		{[]string{"run", "--help"}, []string{"privacy.lifetime_epsilon", "3 privacy budget exhausted"}},
		{[]string{"privacy", "spent", "--help"}, []string{"--config", "never\nunder-counts", "spent epsilon="}},
		{[]string{"audit", "--help"}, []string{"--no-dp", "--repeats", "--keep-duplicates", "exposure_max="}},
		{[]string{"report", "--help"}, []string{"--config", "--samples", "epsilon"}},
		{[]string{"eval", "--help"}, []string{"--real", "--synthetic", "--embedding", "--seeds", "--html", "--filter", "allowed to see", "mauve=<mean>"}},
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

func TestBrokerProduceMigrateCommands(t *testing.T) {
	dsn := needClickHouse(t)
	db, _, _ := freshDatabase(t, dsn)

	brk := startProc(t, nil, "broker", "--listen", "127.0.0.1:0", "--partitions", "2")
	brk.waitFor("broker listening on ", 30*time.Second)
	addr := strings.TrimSpace(strings.SplitN(strings.SplitN(brk.output(), "broker listening on ", 2)[1], "\n", 2)[0])

	file := filepath.Join(t.TempDir(), "in.jsonl")
	var lines []string
	for i := range 250 {
		lines = append(lines, fmt.Sprintf(`{"id":"%d","user_id":"u%d","text":"question %d"}`, i, i%7, i))
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	prod := startProc(t, nil, "produce", "--brokers", addr, "--topic", "t1", "--file", file, "--key", "user_id")
	if code := prod.wait(time.Minute); code != 0 {
		t.Fatalf("produce exit %d:\n%s", code, prod.output())
	}
	if !strings.Contains(prod.output(), "produced 250 messages to t1") {
		t.Errorf("produce output:\n%s", prod.output())
	}
	var total int64
	for _, n := range partitionEnds(t, addr, "t1") {
		total += n
	}
	if total != 250 {
		t.Errorf("topic holds %d messages, want 250", total)
	}

	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"text":"ok"}`+"\n"+`{"txt":"SECRET-line-two"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	prod = startProc(t, nil, "produce", "--brokers", addr, "--topic", "t2", "--file", bad)
	if code := prod.wait(time.Minute); code != 1 || !strings.Contains(prod.output(), "line 2") || strings.Contains(prod.output(), "SECRET") {
		t.Errorf("a bad line should fail with its number and without its text; exit %d:\n%s", code, prod.output())
	}

	for _, want := range []string{"applied 0001_init.sql", "schema is up to date"} {
		mig := startProc(t, nil, "migrate", "--clickhouse", db)
		if code := mig.wait(time.Minute); code != 0 || !strings.Contains(mig.output(), want) {
			t.Errorf("migrate exit %d, want output %q:\n%s", code, want, mig.output())
		}
	}

	brk.signal(syscall.SIGTERM)
	if code := brk.wait(30 * time.Second); code != 0 {
		t.Errorf("broker exit %d after SIGTERM", code)
	}
}

func TestGenerateWritesDistinctJSONLines(t *testing.T) {
	if testing.Short() {
		t.Skip("loads and runs the shipped model")
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	run := startProc(t, nil, "generate", "--n", "6", "--max-tokens", "24", "--seed", "5", "--out", out)
	if code := run.wait(3 * time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, run.output())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		var rec struct{ Text string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil || strings.TrimSpace(rec.Text) == "" {
			t.Errorf("bad line %q: %v", l, err)
		}
		if seen[rec.Text] {
			t.Errorf("duplicate %q", rec.Text)
		}
		seen[rec.Text] = true
	}
	if len(lines) != 6 || !strings.Contains(run.output(), "wrote 6 instructions") {
		t.Errorf("%d lines; output:\n%s", len(lines), run.output())
	}
}

func TestPrivacyCommandsPrintTheLastLine(t *testing.T) {
	tests := []struct {
		args []string
		want string // prefix of the last line
	}{
		{[]string{"privacy", "epsilon", "--noise", "1.5", "--sample-rate", "0.05", "--steps", "1000", "--delta", "1e-6", "--accountant", "pld"}, "epsilon=6.199"},
		{[]string{"privacy", "epsilon", "--noise", "1.5", "--sample-rate", "0.04", "--steps", "2250", "--delta", "1e-5"}, "epsilon=7.32911117"},
		{[]string{"privacy", "noise", "--epsilon", "8", "--delta", "1e-5", "--sample-rate", "0.04", "--steps", "2250"}, "noise=1.41"},
		{[]string{"privacy", "noise", "--accountant", "pld", "--epsilon", "4", "--delta", "1e-6", "--sample-rate", "0.032", "--steps", "32", "--histogram-sigma", "5"}, "noise=0.759"},
		{[]string{"privacy", "epsilon", "--noise", "1.3", "--sample-rate", "0.0025", "--steps", "6000", "--delta", "1e-5"}, "epsilon=0.72422340"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:2], " "), func(t *testing.T) {
			run := startProc(t, nil, tt.args...)
			if code := run.wait(30 * time.Second); code != 0 {
				t.Fatalf("exit %d:\n%s", code, run.output())
			}
			lines := strings.Split(strings.TrimSpace(run.output()), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, tt.want) {
				t.Errorf("last line %q, want prefix %q", last, tt.want)
			}
		})
	}
	// PLD is tighter than RDP on the same setting.
	pld := startProc(t, nil, "privacy", "epsilon", "--accountant", "pld", "--noise", "1.5", "--sample-rate", "0.05", "--steps", "1000", "--delta", "1e-6")
	if code := pld.wait(time.Minute); code != 0 || !strings.Contains(pld.output(), "epsilon=6.199") {
		t.Errorf("pld epsilon: exit %d:\n%s", code, pld.output())
	}
}

func TestEvalPrintsMauveAndWritesTheHTMLReport(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, texts []string) string {
		t.Helper()
		var b strings.Builder
		for _, s := range texts {
			line, _ := json.Marshal(map[string]string{"text": s})
			b.Write(append(line, '\n'))
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	words := []string{"bake", "bread", "oven", "python", "loop", "code", "star", "orbit", "moon", "river", "boat", "fish"}
	var real, syn []string
	for i := range 200 {
		real = append(real, fmt.Sprintf("how do I %s the %s near the %s, case %d", words[i%12], words[(i*5)%12], words[(i*7)%12], i))
		syn = append(syn, fmt.Sprintf("tell me why %s and %s meet %s, item %d", words[(i*3)%12], words[(i*5)%12], words[i%4], i))
	}
	html := filepath.Join(dir, "report.html")
	run := startProc(t, nil, "eval", "--real", write("real.jsonl", real), "--synthetic", write("syn.jsonl", syn),
		"--embedding", "lexical", "--seeds", "2", "--filter", "--histogram-sigma", "2", "--clusters", "5", "--html", html)
	if code := run.wait(2 * time.Minute); code != 0 {
		t.Fatalf("eval exit %d:\n%s", code, run.output())
	}
	out := strings.TrimSpace(run.output())
	lines := strings.Split(out, "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "mauve=") {
		t.Errorf("last line %q, want mauve=<mean>", last)
	}
	for _, want := range []string{"MAUVE after the filter", "leakage:", "distinct-1..4", "epsilon"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	page, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(page), "<svg") {
		t.Errorf("HTML report missing or without plots: %v", err)
	}
	bad := startProc(t, nil, "eval", "--real", write("one.jsonl", real[:1]), "--synthetic", write("s2.jsonl", syn))
	if code := bad.wait(time.Minute); code != 2 || !strings.Contains(bad.output(), "need at least 2") {
		t.Errorf("one real text: exit %d:\n%s", code, bad.output())
	}
}
