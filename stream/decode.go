package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
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

	r := Record{Partition: int32(m.Partition), Offset: m.Offset}
	switch d.Format {
	case FormatText:
		if !utf8.Valid(m.Value) {
			return fail(ReasonInvalidUTF8, "", "value is not valid UTF-8")
		}
		if len(bytes.TrimSpace(m.Value)) == 0 {
			return fail(ReasonEmptyText, "", "value is blank")
		}
		r.Text = string(m.Value)
	case "", FormatJSON:
		f, reason, field, detail := scanJSON(m.Value)
		if reason != "" {
			return fail(reason, field, detail)
		}
		r.Text, r.ID, r.UserID, r.EventTime = f.text, f.id, f.userID, f.ts
	default:
		return Record{}, fmt.Errorf("stream: unknown message format %q", d.Format)
	}

	if r.ID == "" {
		r.ID = m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10)
	}
	if r.UserID == "" && d.UserIDFromKey && len(m.Key) > 0 {
		if !utf8.Valid(m.Key) {
			return fail(ReasonInvalidUTF8, "key", "message key is not valid UTF-8")
		}
		r.UserID = string(m.Key)
	}
	if r.EventTime.IsZero() && !m.Time.IsZero() {
		r.EventTime = m.Time.UTC()
	}
	return r, nil
}

type jsonFields struct {
	text, id, userID string
	ts               time.Time
}

// scanJSON extracts the known fields of a JSON object.
func scanJSON(v []byte) (f jsonFields, reason Reason, field, detail string) {
	if !utf8.Valid(v) {
		// RFC 8259 requires UTF-8; encoding/json would silently replace the
		// bad bytes, hiding corrupt text.
		return f, ReasonInvalidUTF8, "", "value is not valid UTF-8"
	}
	var textRaw, idRaw, userRaw, tsRaw []byte
	if detail := walkObject(v, func(key, val []byte) {
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
	}); detail != "" {
		return f, ReasonMalformed, "", detail
	}

	if textRaw == nil || isNull(textRaw) {
		return f, ReasonEmptyText, "text", "text is missing"
	}
	if textRaw[0] != '"' {
		return f, ReasonMalformed, "text", "text is not a string"
	}
	f.text = unquote(textRaw)
	if len(bytes.TrimSpace([]byte(f.text))) == 0 {
		return f, ReasonEmptyText, "text", "text is blank"
	}
	var ok bool
	if f.id, ok = stringOrNumber(idRaw); !ok {
		return f, ReasonMalformed, "id", "id is not a string or a number"
	}
	if f.userID, ok = stringOrNumber(userRaw); !ok {
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
