package sink

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
)

// Errors of the decoders are built from fixed words and numbers only.
var importErrText = regexp.MustCompile(`^[a-z0-9 :;,()._/'?-]+$`)

// fixedWords are the capitalised words the messages use.
var fixedWords = strings.NewReplacer("JSON", "", "Label Studio", "", "UTF-8", "")

const marker = "SECRETTEXT"

func TestImportDecodeLabelStudio(t *testing.T) {
	ok := `[{"id":1,"data":{"text":"<b>SECRETTEXT</b>","item_id":"w1-0","claim_id":"c1"},"meta":{},
	  "annotations":[{"id":"17","completed_by":{"id":4},"result":[{"value":{"choices":["a"]}}]},
	                 {"completed_by":"Bob","result":[ ]},
	                 {"id":18,"completed_by":3,"result":[],"was_cancelled":true}]},
	 {"data":{"text":"x"},"meta":{"item_id":"w1-1","claim_id":"c2"},"annotations":[]}]`
	anns, err := DecodeLabelStudio(strings.NewReader(ok), DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(anns) != 2 {
		t.Fatalf("got %d annotations, want 2: %+v", len(anns), anns)
	}
	if a := anns[0]; a.ItemID != "w1-0" || a.ClaimID != "c1" || a.Annotator != "labelstudio-user-4" || a.AnnotationID != "ls-17" ||
		a.Label != `[{"value":{"choices":["a"]}}]` || a.Pos != "task 1 annotation 1" {
		t.Errorf("first = %+v", a)
	}
	if a := anns[1]; a.Annotator != "Bob" || a.Label != "[]" || !strings.HasPrefix(a.AnnotationID, "h") {
		t.Errorf("second = %+v", a)
	}

	tests := []struct {
		name string
		in   string
		lim  DecodeLimits
		want string
	}{
		{"empty", "", DecodeLimits{}, "unexpected end of file"},
		{"not an array", `{"SECRETTEXT":1}`, DecodeLimits{}, "expected a json array"},
		{"syntax", `[{"data":{"text":"SECRETTEXT"}, SECRETTEXT}]`, DecodeLimits{}, "task 1: invalid json at byte"},
		{"wrong type", `[{"data":{"item_id":5,"text":"SECRETTEXT"}}]`, DecodeLimits{}, "task 1: a field has the wrong json type"},
		{"no item id", `[{"data":{"text":"SECRETTEXT"},"annotations":[]}]`, DecodeLimits{}, "task 1: data.item_id is missing"},
		{"item id with escape", `[{"data":{"item_id":"SECRETTEXT\u001b[2J"}}]`, DecodeLimits{}, "printable"},
		{"long item id", `[{"data":{"item_id":"` + strings.Repeat("S", 300) + `"}}]`, DecodeLimits{}, "printable"},
		{"result not array", `[{"data":{"item_id":"a"},"annotations":[{"completed_by":1,"result":{"SECRETTEXT":1}}]}]`, DecodeLimits{}, "task 1 annotation 1: result must be a json array"},
		{"no completed_by", `[{"data":{"item_id":"a"},"annotations":[{"result":[]}]}]`, DecodeLimits{}, "completed_by is missing"},
		{"bad completed_by", `[{"data":{"item_id":"a"},"annotations":[{"completed_by":[1],"result":[]}]}]`, DecodeLimits{}, "completed_by must be"},
		{"float id", `[{"data":{"item_id":"a"},"annotations":[{"id":1.5,"completed_by":1,"result":[]}]}]`, DecodeLimits{}, "id must be"},
		{"trailing", `[] SECRETTEXT`, DecodeLimits{}, "unexpected data after the task array"},
		{"truncated", `[{"data":{"item_id":"SECRETTEXT`, DecodeLimits{}, "task 1:"},
		{"too large", `[` + strings.Repeat(" ", 100) + `]`, DecodeLimits{MaxBytes: 50}, "larger than 50 bytes"},
		{"too many", `[{"data":{"item_id":"a"},"annotations":[{"completed_by":1,"result":[]},{"completed_by":2,"result":[]}]}]`, DecodeLimits{MaxAnnotations: 1}, "more than 1 annotations"},
		{"label too large", `[{"data":{"item_id":"a"},"annotations":[{"completed_by":1,"result":["` + strings.Repeat("S", 100) + `"]}]}]`, DecodeLimits{MaxLabelBytes: 20}, "label is larger than 20 bytes"},
		{"invalid utf8", "[{\"data\":{\"item_id\":\"a\xff\"}}]", DecodeLimits{}, "not valid utf-8"},
		{"deep nesting", `[{"data":{"item_id":"a"},"annotations":[{"completed_by":1,"result":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}]}]`, DecodeLimits{}, "task 1: invalid json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeLabelStudio(strings.NewReader(tt.in), tt.lim)
			checkImportErr(t, err, tt.want)
		})
	}
}

func checkImportErr(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, ErrBadImport) {
		t.Fatalf("err = %v, want ErrBadImport", err)
	}
	msg := err.Error()
	if !strings.Contains(strings.ToLower(msg), want) {
		t.Errorf("err = %q, want it to contain %q", msg, want)
	}
	if strings.Contains(msg, marker) || strings.Contains(msg, "SSSS") {
		t.Errorf("err quotes the file: %q", msg)
	}
}

func TestImportDecodeJSONL(t *testing.T) {
	in := "{\"item_id\":\"w1-0\",\"annotator\":\"ann\",\"label\":{\"q\": 1 },\"claim_id\":\"c1\"}\n\n" +
		"{\"item_id\":\"w1-1\",\"annotator\":\"ann\",\"label\":\"<b>\",\"annotation_id\":7,\"text\":\"ignored\"}\n"
	anns, err := DecodeJSONL(strings.NewReader(in), DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(anns) != 2 || anns[0].Label != `{"q":1}` || anns[0].ClaimID != "c1" || anns[0].Pos != "line 1" ||
		anns[1].AnnotationID != "j-7" || anns[1].Pos != "line 3" || anns[1].Label != `"<b>"` {
		t.Fatalf("decoded %+v", anns)
	}
	again, _ := DecodeJSONL(strings.NewReader(in), DecodeLimits{})
	if again[0].AnnotationID != anns[0].AnnotationID {
		t.Error("annotation ids are not stable across decodes")
	}
	tests := []struct {
		name string
		in   string
		lim  DecodeLimits
		want string
	}{
		{"not an object", `["SECRETTEXT"]`, DecodeLimits{}, "line 1: expected a json object"},
		{"syntax", `{"item_id": SECRETTEXT}`, DecodeLimits{}, "line 1: invalid json"},
		{"two objects", `{"item_id":"a","annotator":"b","label":1} {"SECRETTEXT":1}`, DecodeLimits{}, "line 1: invalid json"},
		{"wrong type", `{"item_id":"a","annotator":["SECRETTEXT"],"label":1}`, DecodeLimits{}, "line 1: a field has the wrong json type"},
		{"no label", `{"item_id":"a","annotator":"b"}`, DecodeLimits{}, "label is missing"},
		{"null label", `{"item_id":"a","annotator":"b","label":null}`, DecodeLimits{}, "label is missing"},
		{"no annotator", `{"item_id":"a","label":1}`, DecodeLimits{}, "annotator is missing"},
		{"control chars", "{\"item_id\":\"a\",\"annotator\":\"SECRETTEXT\\u0007\",\"label\":1}", DecodeLimits{}, "annotator must be"},
		{"long line", `{"item_id":"a","annotator":"b","label":"` + strings.Repeat("S", 200) + `"}`, DecodeLimits{MaxLineBytes: 100}, "line 1 is longer than 100 bytes"},
		{"too large", strings.Repeat("\n", 100), DecodeLimits{MaxBytes: 10}, "larger than 10 bytes"},
		{"too many", "{\"item_id\":\"a\",\"annotator\":\"b\",\"label\":1}\n{\"item_id\":\"a\",\"annotator\":\"b\",\"label\":2}", DecodeLimits{MaxAnnotations: 1}, "more than 1 annotations"},
		{"invalid utf8", "{\"item_id\":\"a\xff\",\"annotator\":\"b\",\"label\":1}", DecodeLimits{}, "not valid utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeJSONL(strings.NewReader(tt.in), tt.lim)
			checkImportErr(t, err, tt.want)
		})
	}
}

func TestImportDetectFormat(t *testing.T) {
	for in, want := range map[string]string{" \n[": "labelstudio", "\ufeff{": "jsonl", "x": "", "": ""} {
		if got, _ := DetectFormat([]byte(in)); got != want {
			t.Errorf("DetectFormat(%q) = %q, want %q", in, got, want)
		}
	}
}

// checkDecoded is the fuzz property shared by both decoders: no panic;
// errors are ErrBadImport (or a read error) made of fixed words; decoded
// annotations satisfy the documented limits.
func checkDecoded(t *testing.T, anns []Annotation, err error, lim DecodeLimits) {
	if err != nil {
		if !errors.Is(err, ErrBadImport) {
			t.Fatalf("error is not ErrBadImport: %v", err)
		}
		if !importErrText.MatchString(fixedWords.Replace(err.Error())) {
			t.Fatalf("error holds more than fixed words and numbers: %q", err)
		}
		return
	}
	for _, a := range anns {
		if !validName(a.ItemID) || !validName(a.Annotator) || (a.ClaimID != "" && !validName(a.ClaimID)) || a.AnnotationID == "" {
			t.Fatalf("invalid annotation accepted: %+v", a)
		}
		if len(a.Label) > lim.MaxLabelBytes || a.Label == "" {
			t.Fatalf("label out of bounds: %d bytes", len(a.Label))
		}
	}
	if len(anns) > lim.MaxAnnotations {
		t.Fatalf("%d annotations, limit %d", len(anns), lim.MaxAnnotations)
	}
}

var fuzzLimits = DecodeLimits{MaxBytes: 1 << 16, MaxAnnotations: 20, MaxLabelBytes: 256, MaxLineBytes: 512}

func FuzzDecodeLabelStudio(f *testing.F) {
	f.Add([]byte(`[{"id":1,"data":{"text":"<script>","item_id":"w1-0","claim_id":"c1"},"annotations":[{"id":2,"completed_by":{"email":"a@b"},"result":[{"value":{"choices":["x"]}}]}]}]`))
	f.Add([]byte(`[{"data":{"item_id":"a"},"annotations":[{"completed_by":1,"result":[],"was_cancelled":true}]}]`))
	f.Add([]byte(`[{"meta":{"item_id":"a"},"annotations":[{"id":"x","completed_by":"n","result":[1,2,{"a":null}]}]}] `))
	f.Add([]byte(`[`))
	f.Add([]byte(`{"SECRETTEXT":1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		anns, err := DecodeLabelStudio(bytes.NewReader(in), fuzzLimits)
		checkDecoded(t, anns, err, fuzzLimits.withDefaults())
		if err == nil {
			for _, a := range anns {
				if !strings.HasPrefix(a.Label, "[") {
					t.Fatalf("label is not an array: %d bytes", len(a.Label))
				}
			}
		}
	})
}

func FuzzDecodeJSONL(f *testing.F) {
	f.Add([]byte("{\"item_id\":\"w1-0\",\"annotator\":\"ann\",\"label\":{\"q\":1}}\n"))
	f.Add([]byte("{\"item_id\":\"a\",\"annotator\":\"b\",\"label\":[1],\"annotation_id\":\"z\",\"claim_id\":\"c\"}\n\n{}"))
	f.Add([]byte("\xff\n{"))
	f.Fuzz(func(t *testing.T, in []byte) {
		anns, err := DecodeJSONL(bytes.NewReader(in), fuzzLimits)
		checkDecoded(t, anns, err, fuzzLimits.withDefaults())
	})
}
