package sink

// Export to and import from annotation tools: Label Studio task JSON and
// JSON lines.
//
// Export: the text is synthetic (DP-released) and safe to show, but it is
// arbitrary model output, so it is written with encoding/json's default
// escaping: '<', '>' and '&' become \u003c, \u003e and \u0026 (a file
// pasted into an HTML page cannot open a <script>), U+2028/U+2029 are
// escaped, and invalid UTF-8 becomes U+FFFD.
//
// Import: the file comes from outside (a Label Studio instance, a person),
// so the decoders are defensive: the whole file, each JSONL line, each label
// and the number of annotations are bounded (DecodeLimits), names and ids
// must be short printable text, labels must be JSON, and every error says
// where (task/annotation index, line, byte offset) but never quotes the
// file: no text of the file, not even encoding/json's own messages (which
// quote offending characters), reaches an error, a log or a terminal.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// ErrBadImport: an import file was malformed, too large, or referred to
// items that are not in the queue.
var ErrBadImport = errors.New("bad import file")

// Annotation is one finished annotation, decoded from an import file.
type Annotation struct {
	ItemID       string
	AnnotationID string // stable across re-imports of the same file
	Annotator    string
	Label        string // compact JSON
	ClaimID      string // optional: the claim the work was done under
	Pos          string // where in the file, for errors: "task 3 annotation 1", "line 7"
}

// DecodeLimits bounds what an import may hold. Zero fields take the
// defaults.
type DecodeLimits struct {
	MaxBytes       int64 // whole file (default 64 MiB)
	MaxAnnotations int   // default 200,000
	MaxLabelBytes  int   // one label/result, compact (default 64 KiB)
	MaxLineBytes   int   // one JSONL line (default 1 MiB)
}

func (l DecodeLimits) withDefaults() DecodeLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 64 << 20
	}
	if l.MaxAnnotations <= 0 {
		l.MaxAnnotations = 200_000
	}
	if l.MaxLabelBytes <= 0 {
		l.MaxLabelBytes = 64 << 10
	}
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = 1 << 20
	}
	return l
}

func importErr(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrBadImport)
}

// jsonProblem describes a decoding error by kind and offset only; the
// messages of encoding/json quote the input.
func jsonProblem(err error, fallbackOffset int64) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("a field has the wrong JSON type at byte %d", typ.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of file"
	}
	return fmt.Sprintf("invalid JSON near byte %d", fallbackOffset)
}

// readLimited reads all of r, refusing more than max bytes.
func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read import file: %w", err)
	}
	if int64(len(b)) > max {
		return nil, importErr("import file is larger than %d bytes", max)
	}
	return b, nil
}

// compactLabel validates and compacts a label.
func compactLabel(raw json.RawMessage, lim DecodeLimits) (string, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", "label is missing"
	}
	if !utf8.Valid(raw) {
		return "", "label is not valid UTF-8"
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", "label is not valid JSON"
	}
	if buf.Len() > lim.MaxLabelBytes {
		return "", fmt.Sprintf("label is larger than %d bytes", lim.MaxLabelBytes)
	}
	return buf.String(), ""
}

// checkID validates an item or claim id or an annotator name.
func checkID(what, s string, required bool) string {
	if s == "" {
		if required {
			return what + " is missing"
		}
		return ""
	}
	if !validName(s) || !utf8.ValidString(s) {
		return what + " must be 1-256 printable characters"
	}
	return ""
}

func hashID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return "h" + hex.EncodeToString(h.Sum(nil)[:16])
}

// scalarID renders a JSON number or string id; ok is false for anything
// else (absent ids are ok with "").
func scalarID(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		if _, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
			return n.String(), true
		}
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil && validName(s) {
		return s, true
	}
	return "", false
}

// Label Studio import shapes: only the fields used; the rest is skipped.
type lsTaskIn struct {
	ID          json.RawMessage `json:"id"`
	Data        lsRefs          `json:"data"`
	Meta        lsRefs          `json:"meta"`
	Annotations []lsAnnIn       `json:"annotations"`
}

type lsRefs struct {
	ItemID  string `json:"item_id"`
	ClaimID string `json:"claim_id"`
}

type lsAnnIn struct {
	ID           json.RawMessage `json:"id"`
	CompletedBy  json.RawMessage `json:"completed_by"`
	Result       json.RawMessage `json:"result"`
	WasCancelled bool            `json:"was_cancelled"`
}

// annotatorOf renders Label Studio's completed_by: a user id (number), a
// user object (email, else id) or a plain string.
func annotatorOf(raw json.RawMessage) (string, string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", "completed_by is missing"
	}
	if raw[0] == '{' {
		var u struct {
			ID    json.RawMessage `json:"id"`
			Email string          `json:"email"`
		}
		if err := json.Unmarshal(raw, &u); err != nil {
			return "", "completed_by is not a user object"
		}
		if u.Email != "" {
			if p := checkID("completed_by email", u.Email, true); p != "" {
				return "", p
			}
			return u.Email, ""
		}
		raw = u.ID
	}
	id, ok := scalarID(raw)
	if !ok || id == "" {
		return "", "completed_by must be a user id, a user object or a name"
	}
	if raw[0] == '"' {
		return id, ""
	}
	return "labelstudio-user-" + id, ""
}

// DecodeLabelStudio reads a Label Studio JSON export (an array of tasks,
// each with "data" and "annotations") of tasks exported by EncodeLabelStudio:
// the item is data.item_id (or meta.item_id), the claim data.claim_id (or
// meta.claim_id). Cancelled annotations are skipped. The annotation's
// "result" array is the label; its id (Label Studio's annotation id) keys
// re-imports, or, without one, a hash of item, annotator and label.
func DecodeLabelStudio(r io.Reader, lim DecodeLimits) ([]Annotation, error) {
	lim = lim.withDefaults()
	b, err := readLimited(r, lim.MaxBytes)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(b) {
		return nil, importErr("labelstudio: file is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, importErr("labelstudio: %s", jsonProblem(err, dec.InputOffset()))
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, importErr("labelstudio: expected a JSON array of tasks (Label Studio's JSON export)")
	}
	var out []Annotation
	for task := 1; dec.More(); task++ {
		var t lsTaskIn
		if err := dec.Decode(&t); err != nil {
			return nil, importErr("labelstudio: task %d: %s", task, jsonProblem(err, dec.InputOffset()))
		}
		item, claim := t.Data.ItemID, t.Data.ClaimID
		if item == "" {
			item = t.Meta.ItemID
		}
		if claim == "" {
			claim = t.Meta.ClaimID
		}
		if p := checkID("data.item_id", item, true); p != "" {
			return nil, importErr("labelstudio: task %d: %s (was it exported by dpinstruct export?)", task, p)
		}
		if p := checkID("data.claim_id", claim, false); p != "" {
			return nil, importErr("labelstudio: task %d: %s", task, p)
		}
		for ai, a := range t.Annotations {
			pos := fmt.Sprintf("task %d annotation %d", task, ai+1)
			if a.WasCancelled {
				continue
			}
			if len(out) >= lim.MaxAnnotations {
				return nil, importErr("labelstudio: more than %d annotations", lim.MaxAnnotations)
			}
			who, p := annotatorOf(a.CompletedBy)
			if p != "" {
				return nil, importErr("labelstudio: %s: %s", pos, p)
			}
			res := bytes.TrimSpace(a.Result)
			if len(res) == 0 || res[0] != '[' {
				return nil, importErr("labelstudio: %s: result must be a JSON array", pos)
			}
			label, p := compactLabel(res, lim)
			if p != "" {
				return nil, importErr("labelstudio: %s: %s", pos, p)
			}
			annID, ok := scalarID(a.ID)
			if !ok {
				return nil, importErr("labelstudio: %s: id must be a number or a short string", pos)
			}
			if annID == "" {
				annID = hashID(item, who, label)
			} else {
				annID = "ls-" + annID
			}
			out = append(out, Annotation{ItemID: item, AnnotationID: annID, Annotator: who, Label: label, ClaimID: claim, Pos: pos})
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, importErr("labelstudio: %s", jsonProblem(err, dec.InputOffset()))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, importErr("labelstudio: unexpected data after the task array at byte %d", dec.InputOffset())
	}
	return out, nil
}

type jsonlIn struct {
	ItemID       string          `json:"item_id"`
	Annotator    string          `json:"annotator"`
	Label        json.RawMessage `json:"label"`
	ClaimID      string          `json:"claim_id"`
	AnnotationID json.RawMessage `json:"annotation_id"`
}

// DecodeJSONL reads one annotation per line:
// {"item_id": ..., "annotator": ..., "label": <any JSON>} with optional
// "claim_id" and "annotation_id" (without one, re-imports are keyed by a
// hash of item, annotator and label). Blank lines are skipped.
func DecodeJSONL(r io.Reader, lim DecodeLimits) ([]Annotation, error) {
	lim = lim.withDefaults()
	b, err := readLimited(r, lim.MaxBytes)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, min(4096, lim.MaxLineBytes)), lim.MaxLineBytes)
	var out []Annotation
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		pos := fmt.Sprintf("line %d", line)
		if !utf8.Valid(text) {
			return nil, importErr("jsonl: %s: not valid UTF-8", pos)
		}
		if text[0] != '{' {
			return nil, importErr("jsonl: %s: expected a JSON object", pos)
		}
		if len(out) >= lim.MaxAnnotations {
			return nil, importErr("jsonl: more than %d annotations", lim.MaxAnnotations)
		}
		var in jsonlIn
		if err := json.Unmarshal(text, &in); err != nil {
			return nil, importErr("jsonl: %s: %s", pos, jsonProblem(err, 0))
		}
		for _, c := range []struct {
			what, v string
			req     bool
		}{
			{"item_id", in.ItemID, true}, {"annotator", in.Annotator, true}, {"claim_id", in.ClaimID, false},
		} {
			if p := checkID(c.what, c.v, c.req); p != "" {
				return nil, importErr("jsonl: %s: %s", pos, p)
			}
		}
		label, p := compactLabel(in.Label, lim)
		if p != "" {
			return nil, importErr("jsonl: %s: %s", pos, p)
		}
		annID, ok := scalarID(in.AnnotationID)
		if !ok {
			return nil, importErr("jsonl: %s: annotation_id must be a number or a short string", pos)
		}
		if annID == "" {
			annID = hashID(in.ItemID, in.Annotator, label)
		} else {
			annID = "j-" + annID
		}
		out = append(out, Annotation{ItemID: in.ItemID, AnnotationID: annID, Annotator: in.Annotator, Label: label, ClaimID: in.ClaimID, Pos: pos})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, importErr("jsonl: line %d is longer than %d bytes", line+1, lim.MaxLineBytes)
		}
		return nil, importErr("jsonl: line %d: read error", line+1)
	}
	return out, nil
}

// DetectFormat guesses an import file's format from its first non-space
// byte: '[' is a Label Studio export, '{' JSON lines.
func DetectFormat(head []byte) (string, bool) {
	head = bytes.TrimLeft(head, " \t\r\n\ufeff")
	if len(head) == 0 {
		return "", false
	}
	switch head[0] {
	case '[':
		return "labelstudio", true
	case '{':
		return "jsonl", true
	}
	return "", false
}

// Label Studio task shapes for export.
type lsTaskOut struct {
	ID   int       `json:"id"`
	Data lsDataOut `json:"data"`
	Meta lsMetaOut `json:"meta"`
}

type lsDataOut struct {
	Text     string `json:"text"`
	ItemID   string `json:"item_id"`
	WindowID string `json:"window_id"`
	Cluster  int32  `json:"cluster"`
	ClaimID  string `json:"claim_id,omitempty"`
}

type lsMetaOut struct {
	ItemID           string  `json:"item_id"`
	WindowID         string  `json:"window_id"`
	Cluster          int32   `json:"cluster"`
	Seq              uint32  `json:"seq"`
	Status           string  `json:"status"`
	ClaimID          string  `json:"claim_id,omitempty"`
	Annotator        string  `json:"annotator,omitempty"`
	LeaseUntil       string  `json:"lease_until,omitempty"`
	GeneratorVersion string  `json:"generator_version"`
	Epsilon          float64 `json:"epsilon"`
	Delta            float64 `json:"delta"`
}

func metaOf(it QueueItem) lsMetaOut {
	m := lsMetaOut{ItemID: it.ItemID, WindowID: it.WindowID, Cluster: it.Cluster, Seq: it.Seq, Status: it.Status,
		GeneratorVersion: it.GeneratorVersion, Epsilon: it.Epsilon, Delta: it.Delta}
	if it.Status == QueueClaimed {
		m.ClaimID, m.Annotator = it.ClaimID, it.Annotator
		if !it.LeaseUntil.IsZero() {
			m.LeaseUntil = it.LeaseUntil.UTC().Format("2006-01-02T15:04:05Z")
		}
	}
	return m
}

// EncodeLabelStudio writes items as a Label Studio import file: a JSON array
// of tasks {"id", "data": {"text", "item_id", "window_id", "cluster",
// "claim_id"}, "meta": {...}}. A labeling config shows $text; the ids in
// data come back in Label Studio's export for DecodeLabelStudio.
func EncodeLabelStudio(w io.Writer, items []QueueItem) error {
	tasks := make([]lsTaskOut, len(items))
	for i, it := range items {
		m := metaOf(it)
		tasks[i] = lsTaskOut{ID: i + 1, Meta: m,
			Data: lsDataOut{Text: it.Text, ItemID: it.ItemID, WindowID: it.WindowID, Cluster: it.Cluster, ClaimID: m.ClaimID}}
	}
	// json.MarshalIndent escapes HTML like json.Marshal.
	b, err := json.MarshalIndent(tasks, "", "  ")
	if err != nil {
		return fmt.Errorf("encode label studio tasks: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

type jsonlOut struct {
	lsMetaOut
	Text string `json:"text"`
}

// EncodeJSONL writes one JSON object per item and line: the fields of the
// Label Studio meta plus "text".
func EncodeJSONL(w io.Writer, items []QueueItem) error {
	enc := json.NewEncoder(w) // escapes HTML by default
	for _, it := range items {
		if err := enc.Encode(jsonlOut{lsMetaOut: metaOf(it), Text: it.Text}); err != nil {
			return err
		}
	}
	return nil
}
