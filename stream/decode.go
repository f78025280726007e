package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
)

// Format is the encoding of message values.
type Format string

const (
	// FormatJSON is one JSON object per message; see [Decoder].
	FormatJSON Format = "json"
	// FormatText is the whole message value as the instruction text.
	FormatText Format = "text"
)

// ParseFormat checks a format name from configuration or a flag. The empty
// string means [FormatJSON].
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", FormatJSON:
		return FormatJSON, nil
	case FormatText:
		return FormatText, nil
	}
	return "", fmt.Errorf("stream: unknown message format %q (want %q or %q)", s, FormatJSON, FormatText)
}

// Reason says why a message was rejected. Reasons are stable strings: they
// end up in dead-letter headers and metric labels.
type Reason string

const (
	ReasonMalformed   Reason = "malformed"    // not JSON, not an object, or a field of the wrong type
	ReasonEmptyText   Reason = "empty_text"   // text missing, null, or only whitespace
	ReasonInvalidUTF8 Reason = "invalid_utf8" // bytes that are not UTF-8
	ReasonOversized   Reason = "oversized"    // value larger than Decoder.MaxMessageBytes
)

// DecodeError reports a rejected message. It deliberately holds no part of
// the message: only where it came from, what kind of problem it has and
// which field is at fault, so it is safe to log and to return up the stack.
type DecodeError struct {
	Reason    Reason
	Topic     string
	Partition int32
	Offset    int64
	Field     string // JSON field at fault ("key" for the message key); empty when not one field

	detail string // fixed wording chosen by this package, never derived from input bytes
}

func (e *DecodeError) Error() string {
	msg := fmt.Sprintf("stream: %s message at %s/%d@%d", e.Reason, e.Topic, e.Partition, e.Offset)
	if e.Field != "" {
		msg += fmt.Sprintf(" (field %q)", e.Field)
	}
	if e.detail != "" {
		msg += ": " + e.detail
	}
	return msg
}

// Is lets errors.Is match any *DecodeError with the same Reason, e.g.
// errors.Is(err, &DecodeError{Reason: ReasonOversized}).
func (e *DecodeError) Is(target error) bool {
	t, ok := target.(*DecodeError)
	return ok && t.Reason == e.Reason
}

// ReasonOf returns the reason of the *DecodeError in err's chain.
func ReasonOf(err error) (Reason, bool) {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason, true
	}
	return "", false
}

// DefaultMaxMessageBytes is the value size limit when Decoder.MaxMessageBytes
// is zero; it matches Kafka's default message.max.bytes.
const DefaultMaxMessageBytes = 1 << 20

// maxJSONDepth bounds nesting in JSON values. Only flat objects are
// expected; the bound stops a crafted message from costing more than a
// linear scan.
const maxJSONDepth = 32

// Decoder turns Kafka messages into records. The zero value decodes JSON
// with a 1 MiB limit.
//
// A JSON message is one object:
//
//	{"text": "...", "id": "..." | 123, "user_id": "..." | 123, "ts": "RFC3339" | unix seconds | unix milliseconds}
//
// Only text is required; it must be a string that is not blank. Other fields
// are ignored. Field names match exactly (unlike encoding/json, "Text" is not
// "text"); when a name repeats, the last one wins. A numeric ts of magnitude
// below 1e11 is seconds, otherwise milliseconds.
//
// Defaults: ID is "<topic>/<partition>/<offset>", which is stable across
// redelivery; UserID is the message key when UserIDFromKey is set and the
// value has no user_id; EventTime is ts, else the message timestamp, else
// zero.
type Decoder struct {
	Format          Format // empty means FormatJSON
	MaxMessageBytes int    // 0 means DefaultMaxMessageBytes
	UserIDFromKey   bool
}

// Decode decodes one message. Errors for bad messages are *DecodeError; an
// unknown Format is reported with a plain error since it is a configuration
// mistake, not a property of the message.
func (d Decoder) Decode(m kafka.Message) (Record, error) {
	limit := d.MaxMessageBytes
	if limit <= 0 {
		limit = DefaultMaxMessageBytes
	}
	fail := func(reason Reason, field, detail string) (Record, error) {
		return Record{}, &DecodeError{Reason: reason, Topic: m.Topic, Partition: int32(m.Partition), Offset: m.Offset, Field: field, detail: detail}
	}
	// Size first: nothing else should spend time on a value we will refuse.
	if len(m.Value) > limit {
		return fail(ReasonOversized, "", fmt.Sprintf("%d bytes exceeds the %d byte limit", len(m.Value), limit))
	}

	// The decoded strings are gathered as byte slices (mostly into m.Value)
	// and copied out once, at the end, into one allocation.
	var text, id, userID []byte
	var eventTime time.Time
	switch d.Format {
	case FormatText:
		if !utf8.Valid(m.Value) {
			return fail(ReasonInvalidUTF8, "", "value is not valid UTF-8")
		}
		if len(bytes.TrimSpace(m.Value)) == 0 {
			return fail(ReasonEmptyText, "", "value is blank")
		}
		text = m.Value
	case "", FormatJSON:
		f, reason, field, detail := scanJSON(m.Value)
		if reason != "" {
			return fail(reason, field, detail)
		}
		text, id, userID, eventTime = f.text, f.id, f.userID, f.ts
	default:
		return Record{}, fmt.Errorf("stream: unknown message format %q", d.Format)
	}

	var idBuf [64]byte // the default id is built here, on the stack, for typical topic names
	if len(id) == 0 {
		id = append(append(idBuf[:0], m.Topic...), '/')
		id = append(strconv.AppendInt(id, int64(m.Partition), 10), '/')
		id = strconv.AppendInt(id, m.Offset, 10)
	}
	if len(userID) == 0 && d.UserIDFromKey && len(m.Key) > 0 {
		if !utf8.Valid(m.Key) {
			return fail(ReasonInvalidUTF8, "key", "message key is not valid UTF-8")
		}
		userID = m.Key
	}
	if eventTime.IsZero() && !m.Time.IsZero() {
		eventTime = m.Time.UTC()
	}
	r := Record{EventTime: eventTime, Partition: int32(m.Partition), Offset: m.Offset}
	r.Text, r.ID, r.UserID = copyStrings(text, id, userID)
	return r, nil
}

// copyStrings returns copies of a, b and c as strings sharing one
// allocation. A record's strings live and die together (they are copied into
// Arrow builders and dropped), and on the ingest path one allocation a record
// instead of three is a measurable cut in GC work.
func copyStrings(a, b, c []byte) (string, string, string) {
	var sb strings.Builder
	sb.Grow(len(a) + len(b) + len(c))
	sb.Write(a)
	sb.Write(b)
	sb.Write(c)
	s := sb.String()
	return s[:len(a)], s[len(a) : len(a)+len(b)], s[len(a)+len(b):]
}

// jsonFields holds the decoded known fields of a JSON message. The byte
// slices point into the message value unless the field had escapes.
type jsonFields struct {
	text, id, userID []byte
	ts               time.Time
}

// scanJSON extracts the known fields of a JSON object.
func scanJSON(v []byte) (f jsonFields, reason Reason, field, detail string) {
	var textRaw, idRaw, userRaw, tsRaw []byte
	collect := func(key, val []byte) {
		switch string(key) {
		case "text":
			textRaw = val
		case "id":
			idRaw = val
		case "user_id":
			userRaw = val
		case "ts":
			tsRaw = val
		}
	}
	// The common case, a well-formed object, costs one pass (scanObject).
	// Anything it refuses is checked again below by separate passes, which
	// decide and name the problem exactly as they always have, so the
	// rejection rules live in one place and the fast path can only accept.
	if !scanObject(v, collect) {
		textRaw, idRaw, userRaw, tsRaw = nil, nil, nil, nil
		if !utf8.Valid(v) {
			// RFC 8259 requires UTF-8; encoding/json would silently replace the
			// bad bytes, hiding corrupt text.
			return f, ReasonInvalidUTF8, "", "value is not valid UTF-8"
		}
		if detail := walkObject(v, collect); detail != "" {
			return f, ReasonMalformed, "", detail
		}
	}

	if textRaw == nil || isNull(textRaw) {
		return f, ReasonEmptyText, "text", "text is missing"
	}
	if textRaw[0] != '"' {
		return f, ReasonMalformed, "text", "text is not a string"
	}
	f.text = unquoteBytes(textRaw)
	if len(bytes.TrimSpace(f.text)) == 0 {
		return f, ReasonEmptyText, "text", "text is blank"
	}
	var ok bool
	if f.id, ok = rawStringOrNumber(idRaw); !ok {
		return f, ReasonMalformed, "id", "id is not a string or a number"
	}
	if f.userID, ok = rawStringOrNumber(userRaw); !ok {
		return f, ReasonMalformed, "user_id", "user_id is not a string or a number"
	}
	if f.ts, ok = parseTS(tsRaw); !ok {
		return f, ReasonMalformed, "ts", "ts is not an RFC 3339 string or a unix time in seconds or milliseconds"
	}
	return f, "", "", ""
}

// walkObject calls fn with the unescaped name and raw value of each member of
// the JSON object v, in order, and returns a description of what is wrong
// with v, or "" if nothing is. It walks the top level itself, rather than
// using json.Unmarshal into a struct, so that names match exactly, nesting
// depth is bounded, unknown members cost no allocation, and no encoding/json
// error (whose text can quote the input) ever reaches a caller.
func walkObject(v []byte, fn func(key, val []byte)) string {
	// json.Valid runs encoding/json's scanner, which is iterative and does not
	// allocate; once it passes, the walk below may assume well-formed input.
	if !json.Valid(v) {
		return fmt.Sprintf("malformed JSON at byte %d", syntaxOffset(v))
	}
	i := skipSpace(v, 0)
	if v[i] != '{' {
		return "value is not a JSON object"
	}
	i = skipSpace(v, i+1)
	for v[i] != '}' {
		keyStart, keyEnd := i, skipString(v, i)
		key := v[keyStart+1 : keyEnd-1]
		i = skipSpace(v, keyEnd)
		i = skipSpace(v, i+1) // past ':'
		valEnd, ok := skipValue(v, i)
		if !ok {
			return fmt.Sprintf("JSON nested deeper than %d levels at byte %d", maxJSONDepth, valEnd)
		}
		if bytes.IndexByte(key, '\\') >= 0 {
			// Escaped names are rare; let encoding/json unescape them.
			key = []byte(unquote(v[keyStart:keyEnd]))
		}
		fn(key, v[i:valEnd])
		i = skipSpace(v, valEnd)
		if v[i] == ',' {
			i = skipSpace(v, i+1)
		}
	}
	return ""
}

// scanObject checks in one pass that v is a JSON object whose strings are
// valid UTF-8 and whose member values nest at most maxJSONDepth deep, calling
// fn with the unescaped name and raw value of each member, in order. It is the
// fast path of utf8.Valid + walkObject (which runs json.Valid, then walks):
// on the Decoder's hot path those were three passes over every value. It
// reports only whether v passed; fn may have been called for some members of
// a value that then fails. It accepts nothing the slow checks reject (the
// decoder's differential fuzzing compared the two).
func scanObject(v []byte, fn func(key, val []byte)) bool {
	i := skipSpace(v, 0)
	if i >= len(v) || v[i] != '{' {
		return false
	}
	i = skipSpace(v, i+1)
	if i < len(v) && v[i] == '}' {
		return skipSpace(v, i+1) == len(v)
	}
	for {
		if i >= len(v) || v[i] != '"' {
			return false
		}
		keyEnd, escaped, ok := scanString(v, i)
		if !ok {
			return false
		}
		key := v[i+1 : keyEnd-1]
		if escaped {
			key = []byte(unquote(v[i:keyEnd]))
		}
		i = skipSpace(v, keyEnd)
		if i >= len(v) || v[i] != ':' {
			return false
		}
		i = skipSpace(v, i+1)
		valEnd, ok := scanValue(v, i, 0)
		if !ok {
			return false
		}
		fn(key, v[i:valEnd])
		i = skipSpace(v, valEnd)
		if i >= len(v) {
			return false
		}
		switch v[i] {
		case ',':
			i = skipSpace(v, i+1)
		case '}':
			return skipSpace(v, i+1) == len(v)
		default:
			return false
		}
	}
}

// scanValue returns the index just past the JSON value starting at i, and
// whether it is well formed, valid UTF-8, and nests no deeper than
// maxJSONDepth counting from depth. Recursion is bounded by maxJSONDepth.
func scanValue(v []byte, i, depth int) (int, bool) {
	if i >= len(v) {
		return i, false
	}
	switch c := v[i]; {
	case c == '"':
		end, _, ok := scanString(v, i)
		return end, ok
	case c == '{' || c == '[':
		if depth++; depth > maxJSONDepth {
			return i, false
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipSpace(v, i+1)
		if i < len(v) && v[i] == closer {
			return i + 1, true
		}
		for {
			if c == '{' { // a member name and colon first
				if i >= len(v) || v[i] != '"' {
					return i, false
				}
				end, _, ok := scanString(v, i)
				if !ok {
					return i, false
				}
				i = skipSpace(v, end)
				if i >= len(v) || v[i] != ':' {
					return i, false
				}
				i = skipSpace(v, i+1)
			}
			end, ok := scanValue(v, i, depth)
			if !ok {
				return end, false
			}
			i = skipSpace(v, end)
			if i >= len(v) {
				return i, false
			}
			switch v[i] {
			case ',':
				i = skipSpace(v, i+1)
			case closer:
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == 't':
		return scanLiteral(v, i, "true")
	case c == 'f':
		return scanLiteral(v, i, "false")
	case c == 'n':
		return scanLiteral(v, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(v, i)
	}
	return i, false
}

func scanLiteral(v []byte, i int, lit string) (int, bool) {
	if len(v)-i >= len(lit) && string(v[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	return i, false
}

// scanNumber returns the index just past the JSON number starting at i:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(v []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		return i
	}
	if v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case i < len(v) && v[i] >= '1' && v[i] <= '9':
		i = digits(i + 1)
	default:
		return i, false
	}
	if i < len(v) && v[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

// plainStringByte marks the ASCII bytes that stand for themselves inside a
// JSON string: everything but control characters, '"' and '\\'.
var plainStringByte = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString returns the index just past the string token starting at the
// quote at i, whether it contains escapes, and whether it is well formed
// and valid UTF-8. It is the decoder's innermost loop: instruction text is
// nearly all plain ASCII, which costs one table lookup a byte.
func scanString(v []byte, i int) (end int, escaped, ok bool) {
	j := i + 1
	for j < len(v) {
		c := v[j]
		if c < utf8.RuneSelf {
			if plainStringByte[c] {
				j++
				continue
			}
			switch c {
			case '"':
				return j + 1, escaped, true
			case '\\':
				escaped = true
				if j+1 >= len(v) {
					return j, escaped, false
				}
				switch v[j+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					j += 2
				case 'u':
					if len(v)-j < 6 || !isHex(v[j+2]) || !isHex(v[j+3]) || !isHex(v[j+4]) || !isHex(v[j+5]) {
						return j, escaped, false
					}
					j += 6
				default:
					return j, escaped, false
				}
			default: // a control character
				return j, escaped, false
			}
			continue
		}
		r, size := utf8.DecodeRune(v[j:])
		if r == utf8.RuneError && size == 1 {
			return j, escaped, false
		}
		j += size
	}
	return j, escaped, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isNull(raw []byte) bool { return len(raw) == 4 && string(raw) == "null" }

// unquote decodes a JSON string token known to be valid.
func unquote(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s) // cannot fail: raw is a valid string token
	return s
}

// unquoteBytes is unquote without a copy when raw has no escapes: the result
// then aliases raw.
func unquoteBytes(raw []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	return []byte(unquote(raw))
}

// rawStringOrNumber is stringOrNumber without a copy where it can: the
// result may alias raw.
func rawStringOrNumber(raw []byte) ([]byte, bool) {
	switch {
	case raw == nil || isNull(raw):
		return nil, true
	case raw[0] == '"':
		return unquoteBytes(raw), true
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return raw, true
	}
	return nil, false
}

func stringOrNumber(raw []byte) (string, bool) {
	switch {
	case raw == nil || isNull(raw):
		return "", true
	case raw[0] == '"':
		return unquote(raw), true
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return string(raw), true
	}
	return "", false
}

func parseTS(raw []byte) (time.Time, bool) {
	switch {
	case raw == nil || isNull(raw):
		return time.Time{}, true
	case raw[0] == '"':
		t, err := time.Parse(time.RFC3339Nano, unquote(raw))
		if err != nil {
			return time.Time{}, false
		}
		return t.UTC(), true
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			if n > -1e11 && n < 1e11 {
				return time.Unix(n, 0).UTC(), true
			}
			return time.UnixMilli(n).UTC(), true
		}
		x, err := strconv.ParseFloat(string(raw), 64)
		// Bound to what time.Time can hold in milliseconds to avoid
		// nonsense from overflowing conversions.
		if err != nil || math.IsNaN(x) || math.Abs(x) > 9e15 {
			return time.Time{}, false
		}
		if math.Abs(x) < 1e11 {
			sec, frac := math.Modf(x)
			return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
		}
		return time.UnixMilli(int64(x)).UTC(), true
	}
	return time.Time{}, false
}

// syntaxOffset reports where encoding/json found a syntax error, keeping only
// the offset: the error's own text may quote input.
func syntaxOffset(v []byte) int64 {
	var x struct{}
	var se *json.SyntaxError
	if err := json.Unmarshal(v, &x); errors.As(err, &se) {
		return se.Offset
	}
	return int64(len(v))
}

func skipSpace(v []byte, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string token starting at i.
func skipString(v []byte, i int) int {
	for j := i + 1; j < len(v); j++ {
		switch v[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(v)
}

// skipValue returns the index just past the value starting at i, and false if
// the value nests deeper than maxJSONDepth.
func skipValue(v []byte, i int) (int, bool) {
	depth := 0
	for j := i; j < len(v); j++ {
		switch c := v[j]; c {
		case '"':
			j = skipString(v, j) - 1
			if depth == 0 {
				return j + 1, true
			}
		case '{', '[':
			depth++
			if depth > maxJSONDepth {
				return j, false
			}
		case '}', ']':
			if depth == 0 { // end of the enclosing object after a literal
				return j, true
			}
			depth--
			if depth == 0 {
				return j + 1, true
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return j, true
			}
		}
	}
	return len(v), true
}
