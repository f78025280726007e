package sink

import (
	"net/url"
	"strings"
)

// redactor scrubs secrets from error text. Driver errors can echo the DSN or
// credentials; the sink must never surface the password.
type redactor []string

func (r redactor) err(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range r {
		err = redactErr(err, s)
	}
	return err
}

// redactedError keeps the original chain for errors.Is/As while replacing the
// secret in the message.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redactErr(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, secret) && !strings.Contains(msg, url.QueryEscape(secret)) {
		return err
	}
	msg = strings.ReplaceAll(msg, secret, "xxxxx")
	msg = strings.ReplaceAll(msg, url.QueryEscape(secret), "xxxxx")
	return &redactedError{msg: msg, err: err}
}

// dsnPassword extracts the password from a DSN that clickhouse-go could not
// parse, best effort, so it can still be redacted.
func dsnPassword(dsn string) string {
	rest, ok := strings.CutPrefix(dsn, "clickhouse://")
	if !ok {
		if i := strings.Index(dsn, "://"); i >= 0 {
			rest = dsn[i+3:]
		} else {
			return ""
		}
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	userinfo := rest[:at]
	_, pass, ok := strings.Cut(userinfo, ":")
	if !ok {
		return ""
	}
	return pass
}
