package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestDPProcessorWritesTwoWindows runs the real binary with the dp
// processor (tiny settings: few DP steps, a small pool, the lexical
// embedding) on the embedded broker and real ClickHouse: two windows are
// charged dpsgd+histogram before training, DP fine-tuned, sampled,
// filtered and written; offsets are committed; and no private text from
// the input appears in any table, log line or checkpoint file.
func TestDPProcessorWritesTwoWindows(t *testing.T) {
	dsn := needClickHouse(t)
	secret := "SECRET-" + randomHex(t, 8)
	db, dbName, conn := freshDatabase(t, dsn)
	addr := startBroker(t, 1)
	produceRecords(t, addr, "instr", 120, secret)
	ckDir := filepath.Join(t.TempDir(), "checkpoints")
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 60, epsilon: 8,
		processor: fmt.Sprintf("  name: dp\n  expected_batch: 16\n  epochs: 1\n  seq_len: 16\n  pool_factor: 2\n  clusters: 4\n  embedding: lexical\n  checkpoint_dir: %s\n  keep_checkpoints: 1\n", ckDir)})
	run := startProc(t, nil, "run", "--config", cfg, "--max-windows", "2")
	if code := run.wait(10 * time.Minute); code != 0 {
		t.Fatalf("run: exit %d:\n%s", code, run.output())
	}
	ws := checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
	if len(ws) != 2 {
		t.Fatalf("%d windows written, want 2", len(ws))
	}
	for _, w := range ws {
		if w.outputRows == 0 {
			t.Errorf("window %s released no synthetic instructions", w.id)
		}
	}
	// One ledger entry per window, naming both mechanisms and the plan.
	rows, err := conn.Query(context.Background(), fmt.Sprintf(
		"SELECT window_id, epsilon, delta, mechanism, params FROM %s.privacy_ledger WHERE group_id = 'g'", dbName))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var id, mech, params string
		var eps, delta float64
		if err := rows.Scan(&id, &eps, &delta, &mech, &params); err != nil {
			t.Fatal(err)
		}
		n++
		var plan struct {
			Sigma, HistogramSigma, Epsilon, SGDEpsilon, HistogramEpsilon float64
			Steps                                                        int
		}
		_ = json.Unmarshal([]byte(strings.NewReplacer(`"sigma"`, `"Sigma"`, `"histogram_sigma"`, `"HistogramSigma"`,
			`"sgd_epsilon"`, `"SGDEpsilon"`, `"histogram_epsilon"`, `"HistogramEpsilon"`).Replace(params)), &plan)
		if mech != "dpsgd+histogram" || !(eps > 0 && eps <= 8) || delta != 1e-6 || plan.Sigma <= 0 || plan.Steps != 4 ||
			plan.HistogramSigma <= 0 || !(plan.SGDEpsilon < eps && plan.HistogramEpsilon < eps) {
			t.Errorf("ledger entry %s: mechanism %q epsilon %g delta %g params %s", id, mech, eps, delta, params)
		}
	}
	rows.Close()
	if n != 2 {
		t.Errorf("%d ledger entries, want 2", n)
	}
	var published uint64
	var maxEps float64
	if err := conn.QueryRow(context.Background(), fmt.Sprintf(
		"SELECT count(), max(epsilon) FROM %s.published_instructions", dbName)).Scan(&published, &maxEps); err != nil {
		t.Fatal(err)
	}
	if published == 0 || !(maxEps > 0 && maxEps <= 8) {
		t.Errorf("published %d rows with max epsilon %g", published, maxEps)
	}
	assertNoSecret(t, "the connector's log", run.output(), secret)
	assertNoSecretInDB(t, conn, dbName, secret)
	// Two windows were saved; keep_checkpoints 1 left the newer one.
	entries, err := os.ReadDir(ckDir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("checkpoints: %v (%d folders, want 1)", err, len(entries))
	}
	for _, e := range entries {
		prov, err := os.ReadFile(filepath.Join(ckDir, e.Name(), "window.json"))
		if err != nil || !strings.Contains(string(prov), `"window_id": "`+e.Name()+`"`) || !strings.Contains(string(prov), `"sigma"`) {
			t.Errorf("checkpoint %s lacks its provenance: %v\n%s", e.Name(), err, prov)
		}
	}
	_ = filepath.WalkDir(ckDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			assertNoSecret(t, "checkpoint "+p, string(b), secret)
		}
		return nil
	})
}

// TestUserLevelPrivacyChargesPerUser: with privacy.unit user, a window of
// 60 records from 6 users (10 each, keyed by user) is planned and charged
// per user: the ledger's plan has unit user, 6 records (users) and the
// contribution bound, and the window is written.
func TestUserLevelPrivacyChargesPerUser(t *testing.T) {
	dsn := needClickHouse(t)
	secret := "SECRET-" + randomHex(t, 8)
	db, dbName, conn := freshDatabase(t, dsn)
	addr := startBroker(t, 1)
	var msgs []kafka.Message
	for i := range 60 {
		u := fmt.Sprintf("user-%d", i%6)
		msgs = append(msgs, kafka.Message{Key: []byte(u),
			Value: []byte(fmt.Sprintf(`{"text":"note %d of %s: %s"}`, i, u, secret))})
	}
	writeMessages(t, addr, "instr", msgs...)
	cfg := writeE2EConfig(t, e2eConfig{brokers: addr, topic: "instr", group: "g", dsn: db, instance: "inst-a", maxRecords: 60, epsilon: 8,
		processor: fmt.Sprintf("  name: dp\n  expected_batch: 4\n  epochs: 2\n  pool_factor: 1\n  clusters: 3\n  embedding: lexical\n  checkpoint_dir: %s\n", t.TempDir())})
	body, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(body), "privacy:\n", "privacy:\n  unit: user\n  max_records_per_user: 3\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	run := startProc(t, nil, "run", "--config", cfg, "--max-windows", "1")
	if code := run.wait(5 * time.Minute); code != 0 {
		t.Fatalf("run: exit %d:\n%s", code, run.output())
	}
	checkExactlyOnce(t, conn, dbName, partitionEnds(t, addr, "instr"))
	var params string
	if err := conn.QueryRow(context.Background(), fmt.Sprintf(
		"SELECT params FROM %s.privacy_ledger WHERE group_id = 'g'", dbName)).Scan(&params); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"unit":"user"`, `"records":6,`, `"max_records_per_user":3`} {
		if !strings.Contains(params, want) {
			t.Errorf("ledger params %s lack %s", params, want)
		}
	}
	assertNoSecret(t, "logs", run.output(), secret)
	assertNoSecretInDB(t, conn, dbName, secret)
}
