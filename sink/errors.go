package sink

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// Sentinel errors, matched with errors.Is. The wrapping error names the
// operation and the server host:port (never the password).
var (
	// ErrUnreachable: the server could not be reached (refused, timed out,
	// connection dropped).
	ErrUnreachable = errors.New("clickhouse unreachable")
	// ErrAuth: the server rejected the credentials.
	ErrAuth = errors.New("clickhouse authentication failed")
	// ErrSchemaMismatch: the database schema version differs from the one
	// this binary was built for.
	ErrSchemaMismatch = errors.New("clickhouse schema mismatch")
)

// ClickHouse exception codes the sink reacts to. Names follow
// src/Common/ErrorCodes.cpp.
const (
	codeTimeoutExceeded           = 159
	codeDuplicateColumn           = 15
	codeIllegalColumn             = 44
	codeUnknownTable              = 60
	codeUnknownDatabase           = 81
	codeUnknownUser               = 192
	codeWrongPassword             = 193
	codeRequiredPassword          = 194
	codeTooManySimultaneousQuery  = 202
	codeNoFreeConnection          = 203
	codeSocketTimeout             = 209
	codeNetworkError              = 210
	codeMemoryLimitExceeded       = 241
	codeTableIsReadOnly           = 242
	codeTooManyParts              = 252
	codeReplicaIsNotInQuorum      = 286
	codeUnknownStatusOfInsert     = 319
	codeAllConnectionTriesFailed  = 279
	codeReadonlyReplica           = 425 // SYSTEM_ERROR in some versions; transient either way
	codeAuthenticationFailed      = 516
	codeKeeperException           = 999
	codeUnexpectedEndOfFile       = 32
	codeCannotReadFromSocket      = 33 // CANNOT_READ_ALL_DATA
	codeTooManySimultaneousInsert = 1002
)

// exceptionCode returns the ClickHouse server exception code in err's chain.
func exceptionCode(err error) (int32, bool) {
	// clickhouse.Exception is an alias of proto.Exception; the driver returns
	// it by pointer.
	var ex *proto.Exception
	if errors.As(err, &ex) {
		return ex.Code, true
	}
	return 0, false
}

func isAuthError(err error) bool {
	code, ok := exceptionCode(err)
	if !ok {
		return false
	}
	switch code {
	case codeAuthenticationFailed, codeUnknownUser, codeWrongPassword, codeRequiredPassword:
		return true
	}
	return false
}

// isNetworkError reports transport-level failures: nothing reached the server
// or the connection broke.
func isNetworkError(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := exceptionCode(err); ok {
		return false
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	// The caller's own deadline or cancellation says nothing about the
	// server (context.DeadlineExceeded also satisfies net.Error).
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr):
		return true
	case errors.Is(err, clickhouse.ErrAcquireConnTimeout),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return false
}

// isTransient decides whether retrying the same statement may succeed. Syntax,
// auth and schema errors are permanent: retrying only delays the report.
func isTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if code, ok := exceptionCode(err); ok {
		switch code {
		case codeTimeoutExceeded, codeTooManySimultaneousQuery, codeNoFreeConnection,
			codeSocketTimeout, codeNetworkError, codeMemoryLimitExceeded,
			codeTableIsReadOnly, codeTooManyParts, codeReplicaIsNotInQuorum,
			codeUnknownStatusOfInsert, codeAllConnectionTriesFailed, codeReadonlyReplica,
			codeKeeperException, codeUnexpectedEndOfFile, codeCannotReadFromSocket,
			codeTooManySimultaneousInsert:
			return true
		}
		return false
	}
	return isNetworkError(err) || errors.Is(err, context.DeadlineExceeded)
}

// classify attaches ErrUnreachable or ErrAuth to err when it applies, so
// callers can branch with errors.Is.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case isAuthError(err):
		return &classified{sentinel: ErrAuth, err: err}
	case isNetworkError(err):
		return &classified{sentinel: ErrUnreachable, err: err}
	}
	return err
}

// classified wraps an error with a sentinel without changing its message
// (the caller's fmt.Errorf already names the operation).
type classified struct {
	sentinel error
	err      error
}

func (e *classified) Error() string   { return e.sentinel.Error() + ": " + e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.sentinel, e.err} }
