package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/segmentio/kafka-go"

	"github.com/dpinstruct/dpinstruct/internal/serverwatch"
	"github.com/dpinstruct/dpinstruct/stream"
	"github.com/dpinstruct/dpinstruct/stream/broker"
)

// These tests run the connector and the CLI against a broker that demands
// SASL over TLS, and check that the password never shows: not in logs, not
// in errors, not in `config check`.

// testPKI is a throwaway CA and a server certificate for 127.0.0.1 it
// signed, as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	server                    tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dpinstruct test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	p := testPKI{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server-key.pem")}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	writePEM(t, p.certFile, "CERTIFICATE", srvDER)
	writePEM(t, p.keyFile, "EC PRIVATE KEY", keyDER)
	if p.server, err = tls.LoadX509KeyPair(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clientSecurity is what the test itself uses to talk to a secured broker.
func clientSecurity(t *testing.T, mechanism, user, password, caFile string) *stream.Security {
	t.Helper()
	m, err := stream.NewSASL(mechanism, user, password)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := stream.NewTLSConfig(stream.TLSFiles{CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	return &stream.Security{SASL: m, TLS: tc}
}

// securePartitionEnds is partitionEnds over a secured connection.
func securePartitionEnds(t *testing.T, sec *stream.Security, addr, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := sec.Dialer()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		pc, err := d.DialLeader(ctx, "tcp", addr, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		last, err := pc.ReadLastOffset()
		_ = pc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[int32(p.ID)] = last
	}
	return out
}

// secureReadAll reads n messages from partition 0 of topic.
func secureReadAll(t *testing.T, sec *stream.Security, addr, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond, Dialer: sec.Dialer()})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s after %d messages: %v", topic, len(out), err)
		}
		out = append(out, m)
	}
	return out
}

// secureConfig is writeE2EConfig's body plus kafka.sasl and kafka.tls.
// saslExtra holds the password lines (password_file, or nothing when the
// password comes from the environment).
func secureConfig(t *testing.T, addr, topic, dsn, mechanism, user, saslExtra, caFile string) string {
	t.Helper()
	body := fmt.Sprintf(`kafka:
  brokers: [%s]
  topic: %s
  group_id: g
  dead_letter_topic: %s.dlq
  output_topic: %s.out
  session_timeout: 6s
  sasl:
    mechanism: %s
    username: %s
%s  tls:
    enabled: true
    ca_file: %s
clickhouse:
  dsn: %s
  max_attempts: 12
  initial_backoff: 100ms
  max_backoff: 2s
window:
  max_records: 201
  lease: 3s
  plan_settle: 1500ms
  spill_dir: %s
processor:
  name: count
  rows_per_records: 10
observability:
  listen: 127.0.0.1:0
  log_level: debug
  log_format: json
instance: secure-0
`, addr, topic, topic, topic, mechanism, user, saslExtra, caFile, dsn, filepath.Join(t.TempDir(), "spill"))
	return writeFile(t, "config.yaml", body)
}

// jsonl is n instructions, one JSON object a line.
func jsonl(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id":"r%d","user_id":"user-%d","text":"please summarise note %d"}`+"\n", i, i%17, i)
	}
	return writeFile(t, "in.jsonl", b.String())
}

var listening = regexp.MustCompile(`broker listening on (\S+)`)

func TestSecuredKafkaRunsExactlyOnceAndNeverShowsThePassword(t *testing.T) {
	dsn := needClickHouse(t)
	pki := newTestPKI(t)
	tests := []struct {
		name, mechanism string
		// brokerProcess runs `dpinstruct broker` with its security flags
		// instead of an in-process broker.
		brokerProcess bool
		// passwordFromEnv gives the connector and the producer the password
		// through DPINSTRUCT_KAFKA_SASL_PASSWORD instead of a file.
		passwordFromEnv bool
	}{
		{name: "SCRAM-SHA-256 over TLS, password file", mechanism: "SCRAM-SHA-256"},
		{name: "PLAIN over TLS, password from env, broker command", mechanism: "PLAIN", brokerProcess: true, passwordFromEnv: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			password := "pw-" + randomHex(t, 12)
			user := "connector"
			pwFile := writeFile(t, "kafka.pw", password+"\n")
			db, dbName, conn := freshDatabase(t, dsn)
			var addr string
			var brokerProc *proc
			if tt.brokerProcess {
				brokerProc = startProc(t, nil, "broker", "--listen", "127.0.0.1:0",
					"--sasl-mechanism", tt.mechanism, "--sasl-user", user, "--sasl-password-file", pwFile,
					"--tls-cert", pki.certFile, "--tls-key", pki.keyFile)
				brokerProc.waitFor("broker listening on", 30*time.Second)
				addr = listening.FindStringSubmatch(brokerProc.output())[1]
			} else {
				b, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Partitions: 1,
					SASLUsers: []broker.SASLUser{{Mechanism: tt.mechanism, Username: user, Password: password}},
					TLS:       &tls.Config{Certificates: []tls.Certificate{pki.server}}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(b.Close)
				addr = b.Addr()
			}
			sec := clientSecurity(t, tt.mechanism, user, password, pki.caFile)

			// 200 good records through the secured producer command...
			var env []string
			args := []string{"produce", "--brokers", addr, "--topic", "instr", "--file", jsonl(t, 200), "--key", "user_id",
				"--sasl-mechanism", tt.mechanism, "--sasl-user", user, "--tls", "--tls-ca", pki.caFile}
			saslExtra := "    password_file: " + pwFile + "\n"
			if tt.passwordFromEnv {
				env = []string{"DPINSTRUCT_KAFKA_SASL_PASSWORD=" + password}
				saslExtra = ""
			} else {
				args = append(args, "--sasl-password-file", pwFile)
			}
			prod := startProc(t, env, args...)
			if code := prod.wait(time.Minute); code != 0 {
				t.Fatalf("produce: exit %d:\n%s", code, prod.output())
			}
			assertNoPassword(t, "produce output", prod.output(), password)
			// ...and one malformed one, for the dead-letter writer.
			w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "instr", Transport: sec.Transport(), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
			if err := w.WriteMessages(context.Background(), kafka.Message{Value: []byte("{not json")}); err != nil {
				t.Fatal(err)
			}
			_ = w.Close()

			cfg := secureConfig(t, addr, "instr", db, tt.mechanism, user, saslExtra, pki.caFile)
			check := startProc(t, env, "config", "check", "--config", cfg)
			if code := check.wait(30 * time.Second); code != 0 {
				t.Fatalf("config check: exit %d:\n%s", code, check.output())
			}
			assertNoPassword(t, "config check", check.output(), password)
			if !tt.passwordFromEnv && !strings.Contains(check.output(), "password: xxxxx") {
				t.Errorf("config check should show the password as xxxxx:\n%s", check.output())
			}

			run := startProc(t, env, "run", "--config", cfg, "--max-windows", "1")
			if code := run.wait(2 * time.Minute); code != 0 {
				t.Fatalf("run: exit %d:\n%s", code, run.output())
			}
			assertNoPassword(t, "run logs", run.output(), password)
			ws := checkExactlyOnce(t, conn, dbName, securePartitionEnds(t, sec, addr, "instr"))
			if len(ws) != 1 || ws[0].records != 200 || ws[0].deadLetter != 1 {
				t.Fatalf("written windows %+v, want one of 200 records and 1 dead letter", ws)
			}
			dl := secureReadAll(t, sec, addr, "instr.dlq", 1)
			if header(dl[0], stream.HeaderReason) == "" {
				t.Errorf("dead letter without a reason header")
			}
			secureReadAll(t, sec, addr, "instr.out", int(ws[0].outputRows))
			if brokerProc != nil {
				assertNoPassword(t, "broker output", brokerProc.output(), password)
			}
		})
	}
}

func TestSecuredKafkaFailuresAreClearAndNeverShowThePassword(t *testing.T) {
	if testing.Short() {
		t.Skip("process tests skipped in -short mode")
	}
	pki := newTestPKI(t)
	otherCA := newTestPKI(t) // a CA that did not sign the broker's certificate
	password := "pw-" + randomHex(t, 12)
	b, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Partitions: 1,
		SASLUsers: []broker.SASLUser{{Mechanism: "SCRAM-SHA-512", Username: "connector", Password: password}},
		TLS:       &tls.Config{Certificates: []tls.Certificate{pki.server}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	// The connector checks the brokers before it opens ClickHouse, so no
	// server is needed to see these failures.
	const dsn = "clickhouse://default@127.0.0.1:1/unused"
	wrong := "wrong-" + randomHex(t, 12)
	tests := []struct {
		name, caFile, pwFile string
		want                 []string
	}{
		{"wrong password", pki.caFile, writeFile(t, "wrong.pw", wrong), []string{"SASL", "Authentication Failed", "kafka.sasl.username"}},
		{"unknown CA", otherCA.caFile, writeFile(t, "right.pw", password), []string{"certificate", "unknown authority", "kafka.tls.ca_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := secureConfig(t, b.Addr(), "instr", dsn, "SCRAM-SHA-512", "connector", "    password_file: "+tt.pwFile+"\n", tt.caFile)
			run := startProc(t, nil, "run", "--config", cfg, "--max-windows", "1")
			if code := run.wait(time.Minute); code != 1 {
				t.Fatalf("run: exit %d, want 1:\n%s", code, run.output())
			}
			out := run.output()
			t.Logf("run output:\n%s", out)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("run output lacks %q:\n%s", w, out)
				}
			}
			assertNoPassword(t, "run output", out, password)
			assertNoPassword(t, "run output", out, wrong)

			prod := startProc(t, nil, "produce", "--brokers", b.Addr(), "--topic", "instr", "--file", jsonl(t, 3),
				"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "connector", "--sasl-password-file", tt.pwFile,
				"--tls", "--tls-ca", tt.caFile)
			if code := prod.wait(time.Minute); code != 1 {
				t.Fatalf("produce: exit %d, want 1:\n%s", code, prod.output())
			}
			t.Logf("produce output:\n%s", prod.output())
			if !strings.Contains(prod.output(), tt.want[0]) {
				t.Errorf("produce output lacks %q:\n%s", tt.want[0], prod.output())
			}
			assertNoPassword(t, "produce output", prod.output(), password)
			assertNoPassword(t, "produce output", prod.output(), wrong)
		})
	}
}

// assertNoPassword fails if the password shows in text, as is or hex.
func assertNoPassword(t *testing.T, where, text, password string) {
	t.Helper()
	if strings.Contains(text, password) || strings.Contains(text, fmt.Sprintf("%x", password)) {
		t.Errorf("the password leaked into %s:\n%s", where, text)
	}
}

// TestClickHouseOverTLSWithDSNFile starts a second local ClickHouse (with
// deploy/local/clickhouse.sh) that serves the native protocol over TLS and
// has a password-protected user, and runs the connector against it with the
// DSN, password included, read from clickhouse.dsn_file.
func TestClickHouseOverTLSWithDSNFile(t *testing.T) {
	needClickHouse(t)
	if _, err := os.Stat("/usr/sbin/clickhouse-server"); err != nil {
		if _, err := exec.LookPath("clickhouse"); err != nil {
			t.Skip("no clickhouse server binary to start a TLS instance")
		}
	}
	pki := newTestPKI(t)
	password := "chpw-" + randomHex(t, 12)
	state := t.TempDir()
	tlsPort := strconv.Itoa(freePort(t))
	env := []string{"DPINSTRUCT_CH_DIR=" + state, "DPINSTRUCT_CH_PORT=" + strconv.Itoa(freePort(t)), "DPINSTRUCT_CH_HTTP_PORT=" + strconv.Itoa(freePort(t)),
		"DPINSTRUCT_CH_TLS_PORT=" + tlsPort, "DPINSTRUCT_CH_TLS_CERT=" + pki.certFile, "DPINSTRUCT_CH_TLS_KEY=" + pki.keyFile,
		"DPINSTRUCT_CH_USER=dpi", "DPINSTRUCT_CH_PASSWORD_FILE=" + writeFile(t, "ch.pw", password+"\n")}
	script := func(action string) ([]byte, error) {
		cmd := exec.Command("../../deploy/local/clickhouse.sh", action)
		cmd.Env = append(os.Environ(), env...)
		return cmd.CombinedOutput()
	}
	if out, err := script("start"); err != nil {
		t.Fatalf("clickhouse.sh start: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := script("stop"); err != nil {
			t.Errorf("clickhouse.sh stop: %v\n%s", err, out)
		}
	})
	serverwatch.ReportOnFailure(t, state)
	if b, err := os.ReadFile(filepath.Join(state, "etc", "users.xml")); err != nil || strings.Contains(string(b), password) {
		t.Errorf("users.xml must hold the password's hash only (%v)", err)
	}

	db := "dpi_tls_" + randomHex(t, 4)
	dsn := fmt.Sprintf("clickhouse://dpi:%s@127.0.0.1:%s/%s?secure=true", password, tlsPort, db)
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(pki.caFile)
	roots.AppendCertsFromPEM(caPEM)
	opts.TLS = &tls.Config{RootCAs: roots}
	opts.Auth.Database = "default"
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	addr := startBroker(t, 1)
	produceRecords(t, addr, "instr", 150, "not-a-password")
	cfgBody := fmt.Sprintf(`kafka:
  brokers: [%s]
  topic: instr
  group_id: g
  session_timeout: 6s
clickhouse:
  dsn_file: %s
  max_attempts: 3
  initial_backoff: 100ms
  tls:
    enabled: true
    ca_file: %s
window:
  max_records: 150
  lease: 3s
  spill_dir: %s
processor:
  name: count
observability:
  listen: 127.0.0.1:0
  log_level: debug
instance: tls-0
`, addr, writeFile(t, "dsn", dsn+"\n"), pki.caFile, filepath.Join(t.TempDir(), "spill"))
	cfg := writeFile(t, "config.yaml", cfgBody)
	// The private CA comes from clickhouse.tls.ca_file; without it,
	// ?secure=true checks the system roots, which Go takes from
	// SSL_CERT_FILE when set.
	noCA := strings.Replace(cfgBody, "    ca_file: ", "    # ca_file: ", 1)
	noCA = strings.Replace(noCA, "  tls:\n    enabled: true\n", "", 1)
	caEnv := []string{"SSL_CERT_FILE=" + pki.caFile}

	check := startProc(t, nil, "config", "check", "--config", cfg)
	if code := check.wait(30 * time.Second); code != 0 {
		t.Fatalf("config check: exit %d:\n%s", code, check.output())
	}
	assertNoPassword(t, "config check", check.output(), password)
	if !strings.Contains(check.output(), "dpi:xxxxx@127.0.0.1:"+tlsPort) {
		t.Errorf("config check should show the DSN from the file, masked:\n%s", check.output())
	}

	run := startProc(t, nil, "run", "--config", cfg, "--max-windows", "1")
	if code := run.wait(2 * time.Minute); code != 0 {
		t.Fatalf("run: exit %d:\n%s", code, run.output())
	}
	assertNoPassword(t, "run logs", run.output(), password)
	if ws := checkExactlyOnce(t, conn, db, partitionEnds(t, addr, "instr")); len(ws) != 1 {
		t.Errorf("%d windows written, want 1", len(ws))
	}

	// Without the CA the certificate check fails; with a wrong password the
	// login does (past a TLS handshake checked with ca_file, or with the
	// system roots from SSL_CERT_FILE). All exit 1 and show no password.
	wrongPW := "wrong-" + randomHex(t, 8)
	wrong := strings.Replace(dsn, password, wrongPW, 1)
	for name, c := range map[string]struct {
		body string
		env  []string
		dsn  string
		want string
	}{
		"unknown CA":                    {noCA, nil, dsn, "certificate"},
		"wrong password, ca_file":       {cfgBody, nil, wrong, "password"},
		"wrong password, SSL_CERT_FILE": {noCA, caEnv, wrong, "password"},
	} {
		body := strings.Replace(c.body, "dsn_file: ", "dsn_file: "+writeFile(t, "dsn", c.dsn)+"\n  # ", 1)
		p := startProc(t, c.env, "run", "--config", writeFile(t, "c.yaml", body), "--max-windows", "1")
		if code := p.wait(time.Minute); code != 1 {
			t.Errorf("%s: exit %d, want 1:\n%s", name, code, p.output())
		}
		if !strings.Contains(p.output(), c.want) {
			t.Errorf("%s: output lacks %q:\n%s", name, c.want, p.output())
		}
		t.Logf("%s:\n%s", name, p.output())
		assertNoPassword(t, name+" output", p.output(), password)
		assertNoPassword(t, name+" output", p.output(), wrongPW)
	}
}
