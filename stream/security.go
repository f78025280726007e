package stream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASL mechanisms [NewSASL] accepts.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Security is how every Kafka client of this package authenticates and
// encrypts: SASL (nil: none) and TLS (nil: plaintext). The zero value, and
// a nil *Security, mean a plaintext, unauthenticated connection.
//
// A Security holds the password inside its SASL mechanism; it has no
// printable fields of its own and must not be logged.
type Security struct {
	SASL sasl.Mechanism
	TLS  *tls.Config
}

// NewSASL returns the kafka-go mechanism for mechanism (PLAIN,
// SCRAM-SHA-256 or SCRAM-SHA-512; empty means none, a nil mechanism).
// Errors never contain the password.
func NewSASL(mechanism, username, password string) (sasl.Mechanism, error) {
	switch strings.ToUpper(mechanism) {
	case "":
		return nil, nil
	case SASLPlain:
		return plain.Mechanism{Username: username, Password: password}, nil
	case SASLScramSHA256, SASLScramSHA512:
		algo := scram.SHA256
		if strings.ToUpper(mechanism) == SASLScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, username, password)
		if err != nil {
			// xdg-go/scram fails only on strings SASLprep rejects; its
			// message names the offending input, so do not wrap it.
			return nil, fmt.Errorf("stream: SASL %s: username or password is not valid SASLprep text", mechanism)
		}
		return m, nil
	default:
		return nil, fmt.Errorf("stream: unknown SASL mechanism %q (want %s, %s or %s)", mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
}

// TLSFiles names the PEM files and checks of a TLS client configuration.
type TLSFiles struct {
	// CAFile holds the CA certificates that sign the server's certificate;
	// empty means the system roots.
	CAFile string
	// CertFile and KeyFile are a client certificate for mutual TLS; both
	// or neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked against the server's
	// certificate (default: the host dialed).
	ServerName string
	// InsecureSkipVerify accepts any server certificate: the connection is
	// encrypted but not authenticated, so a man in the middle can read it,
	// SASL PLAIN passwords included.
	InsecureSkipVerify bool
}

// NewTLSConfig builds a client TLS configuration (TLS 1.2 or later) from
// files.
func NewTLSConfig(f TLSFiles) (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         f.ServerName,
		InsecureSkipVerify: f.InsecureSkipVerify, //nolint:gosec // an explicit, documented opt-in
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("stream: TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("stream: TLS CA file %s holds no PEM certificate", f.CAFile)
		}
		c.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("stream: TLS client certificate needs both a cert file and a key file")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			// The error names files and PEM problems, never key bytes.
			return nil, fmt.Errorf("stream: TLS client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Dialer returns a kafka-go dialer (readers, [CheckBrokers]) with s's SASL
// and TLS, and kafka.DefaultDialer's timeouts.
func (s *Security) Dialer() *kafka.Dialer {
	d := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true}
	if s != nil {
		d.SASLMechanism = s.SASL
		d.TLS = s.TLS
	}
	return d
}

// Transport returns a kafka-go transport (writers, kafka.Client) with s's
// SASL and TLS. It returns nil, meaning kafka.DefaultTransport, when s is
// empty. Each call returns a new transport with its own connection pool:
// share one per client and call CloseIdleConnections when done.
func (s *Security) Transport() kafka.RoundTripper {
	if s.empty() {
		return nil
	}
	return &kafka.Transport{
		Dial:        (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		DialTimeout: 5 * time.Second,
		SASL:        s.SASL,
		TLS:         s.TLS,
	}
}

func (s *Security) empty() bool { return s == nil || (s.SASL == nil && s.TLS == nil) }

// explainDialErr is explainKafkaErr for a failed dial, which can also
// tell a broker that hung up or never answered a handshake.
func explainDialErr(err error, d *kafka.Dialer) error {
	if e := explainKafkaErr(err); e != err {
		return e
	}
	switch {
	case d.TLS != nil && errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (no answer to the TLS handshake: does the broker speak TLS on this port? check kafka.tls.enabled)", err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%w (the broker hung up: does it expect TLS or SASL? check kafka.tls.enabled and kafka.sasl.mechanism)", err)
	}
	return err
}

// explainKafkaErr adds what to check to the connection errors that are
// about security settings. It never adds credentials.
func explainKafkaErr(err error) error {
	if err == nil {
		return nil
	}
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce *tls.CertificateVerificationError
	switch {
	case errors.Is(err, kafka.SASLAuthenticationFailed):
		return fmt.Errorf("%w (SASL authentication failed: check kafka.sasl.mechanism, kafka.sasl.username and the password)", err)
	case errors.Is(err, kafka.UnsupportedSASLMechanism):
		return fmt.Errorf("%w (the broker does not accept kafka.sasl.mechanism)", err)
	case errors.Is(err, kafka.IllegalSASLState):
		return fmt.Errorf("%w (SASL: does the broker expect SASL? check kafka.sasl.mechanism)", err)
	case errors.As(err, &ue), errors.As(err, &he), errors.As(err, &ce):
		return fmt.Errorf("%w (TLS certificate check failed: set kafka.tls.ca_file to the CA that signed the broker's certificate, or kafka.tls.server_name)", err)
	case strings.Contains(err.Error(), "first record does not look like a TLS handshake"):
		return fmt.Errorf("%w (the broker does not speak TLS here: check kafka.tls.enabled)", err)
	}
	return err
}
