package stream

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dpinstruct/dpinstruct/stream/broker"
)

// selfSigned returns a server certificate for 127.0.0.1 and the path of a
// PEM file holding it, which clients use as their CA.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, p
}

func secureBroker(t *testing.T, mechanism, password string, cert *tls.Certificate) string {
	t.Helper()
	opts := broker.Options{Listen: "127.0.0.1:0", Partitions: 2}
	if mechanism != "" {
		opts.SASLUsers = []broker.SASLUser{{Mechanism: mechanism, Username: "u", Password: password}}
	}
	if cert != nil {
		opts.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	b, err := broker.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.CreateTopic(t.Context(), "made-by-broker", 1); err != nil {
		t.Fatalf("CreateTopic on a secured broker: %v", err)
	}
	return b.Addr()
}

func mustSecurity(t *testing.T, mechanism, password string, files *TLSFiles) *Security {
	t.Helper()
	m, err := NewSASL(mechanism, "u", password)
	if err != nil {
		t.Fatal(err)
	}
	s := &Security{SASL: m}
	if files != nil {
		if s.TLS, err = NewTLSConfig(*files); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestSecuredClientsRoundTrip runs every client of the package (topic
// creation, producer, source, dead letters, output topic) against brokers
// that demand each mechanism, with and without TLS.
func TestSecuredClientsRoundTrip(t *testing.T) {
	cert, ca := selfSigned(t)
	for _, mech := range []string{"", SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		for _, useTLS := range []bool{false, true} {
			if mech == "" && !useTLS {
				continue // the plaintext path is what the other tests cover
			}
			t.Run(fmt.Sprintf("%s/tls=%v", mech, useTLS), func(t *testing.T) {
				ctx := testContext(t)
				password := "pw-" + mech
				var c *tls.Certificate
				var files *TLSFiles
				if useTLS {
					c, files = &cert, &TLSFiles{CAFile: ca}
				}
				addr := secureBroker(t, mech, password, c)
				sec := mustSecurity(t, mech, password, files)

				if err := CheckBrokers(ctx, []string{addr}, sec.Dialer(), 5*time.Second); err != nil {
					t.Fatal(err)
				}
				if err := EnsureTopic(ctx, []string{addr}, "in", 1, sec.Transport()); err != nil {
					t.Fatal(err)
				}
				n, err := ProduceJSONL(ctx, strings.NewReader(`{"text":"a"}`+"\n"+`{"text":"b"}`+"\n"),
					ProduceOptions{Brokers: []string{addr}, Topic: "in", Transport: sec.Transport()})
				if err != nil || n != 2 {
					t.Fatalf("produced %d: %v", n, err)
				}
				src, err := NewSource(SourceConfig{Brokers: []string{addr}, Topic: "in", GroupID: "g", Dialer: sec.Dialer(), SessionTimeout: 6 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer src.Close()
				var msgs []kafka.Message
				for range 2 {
					m, err := src.Fetch(ctx)
					if err != nil {
						t.Fatal(err)
					}
					msgs = append(msgs, m)
				}
				if err := src.Commit(ctx, msgs...); err != nil {
					t.Fatal(err)
				}
				dl := NewDeadLetter([]string{addr}, "in.dlq", sec.Transport())
				if err := dl.Send(ctx, msgs[0], ReasonMalformed, "test"); err != nil {
					t.Fatal(err)
				}
				if err := dl.Close(); err != nil {
					t.Fatal(err)
				}
				out := NewTopicOutput([]string{addr}, "in.out", sec)
				defer out.Close()
				if err := out.Ensure(ctx); err != nil {
					t.Fatal(err)
				}
				part, end, err := out.PartitionFor(ctx, "w1")
				if err != nil {
					t.Fatal(err)
				}
				if err := out.Produce(ctx, part, []kafka.Message{{Value: []byte("x")}, {Value: []byte("y")}}); err != nil {
					t.Fatal(err)
				}
				var got int
				if err := out.Scan(ctx, part, end, func(kafka.Message) { got++ }); err != nil || got != 2 {
					t.Fatalf("scanned %d: %v", got, err)
				}
			})
		}
	}
}

func TestCheckBrokersExplainsSecurityFailures(t *testing.T) {
	cert, ca := selfSigned(t)
	_, otherCA := selfSigned(t)
	ctx := testContext(t)
	const password = "right-password-123"
	tlsAddr := secureBroker(t, SASLScramSHA256, password, &cert)
	plainAddr := secureBroker(t, SASLScramSHA256, password, nil)
	tests := []struct {
		name string
		addr string
		sec  *Security
		want string
	}{
		{"wrong password", tlsAddr, mustSecurity(t, SASLScramSHA256, "wrong-password-456", &TLSFiles{CAFile: ca}), "SASL authentication failed"},
		{"wrong mechanism", tlsAddr, mustSecurity(t, SASLScramSHA512, password, &TLSFiles{CAFile: ca}), "SASL authentication failed"},
		{"unknown CA", tlsAddr, mustSecurity(t, SASLScramSHA256, password, &TLSFiles{CAFile: otherCA}), "kafka.tls.ca_file"},
		{"wrong server name", tlsAddr, mustSecurity(t, SASLScramSHA256, password, &TLSFiles{CAFile: ca, ServerName: "kafka.example"}), "kafka.tls.server_name"},
		{"TLS to a plaintext broker", plainAddr, mustSecurity(t, SASLScramSHA256, password, &TLSFiles{CAFile: ca}), "kafka.tls.enabled"},
		{"no SASL", plainAddr, &Security{}, "kafka.sasl.mechanism"},
		{"no TLS", tlsAddr, mustSecurity(t, SASLScramSHA256, password, nil), "kafka.tls.enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBrokers(ctx, []string{tt.addr}, tt.sec.Dialer(), 3*time.Second)
			if !errors.Is(err, ErrBrokersUnreachable) {
				t.Fatalf("want ErrBrokersUnreachable, got %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "password-") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
	// Insecure skip-verify still connects, with the wrong CA.
	sec := mustSecurity(t, SASLScramSHA256, password, &TLSFiles{CAFile: otherCA, InsecureSkipVerify: true})
	if err := CheckBrokers(ctx, []string{tlsAddr}, sec.Dialer(), 3*time.Second); err != nil {
		t.Errorf("insecure_skip_verify: %v", err)
	}
}

func TestNewSASLAndTLSConfigErrors(t *testing.T) {
	if m, err := NewSASL("", "u", "p"); m != nil || err != nil {
		t.Errorf("empty mechanism: %v, %v", m, err)
	}
	for _, mech := range []string{SASLPlain, "scram-sha-256", SASLScramSHA512} {
		if m, err := NewSASL(mech, "u", "p"); m == nil || err != nil {
			t.Errorf("%s: %v, %v", mech, m, err)
		}
	}
	if _, err := NewSASL("GSSAPI", "u", "secret"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("unknown mechanism: %v", err)
	}
	_, ca := selfSigned(t)
	missing := filepath.Join(t.TempDir(), "nope.pem")
	for name, f := range map[string]TLSFiles{
		"missing CA":       {CAFile: missing},
		"CA without PEM":   {CAFile: filepath.Join("security_test.go")},
		"cert without key": {CertFile: ca},
		"bad key pair":     {CertFile: ca, KeyFile: ca},
	} {
		if _, err := NewTLSConfig(f); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	c, err := NewTLSConfig(TLSFiles{CAFile: ca, ServerName: "x"})
	if err != nil || c.RootCAs == nil || c.ServerName != "x" || c.MinVersion != tls.VersionTLS12 {
		t.Errorf("NewTLSConfig: %+v, %v", c, err)
	}
	var none *Security
	if none.Transport() != nil || (&Security{}).Transport() != nil {
		t.Error("an empty Security should mean the default transport")
	}
	if d := none.Dialer(); d.SASLMechanism != nil || d.TLS != nil {
		t.Error("an empty Security should give a plain dialer")
	}
}
