package stream

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

func oldScanJSON(v []byte) (f jsonFields, reason Reason, field, detail string) {
	if !utf8.Valid(v) {
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
	f.text = []byte(unquote(textRaw))
	if len(bytes.TrimSpace(f.text)) == 0 {
		return f, ReasonEmptyText, "text", "text is blank"
	}
	var ok bool
	var sid, suser string
	if sid, ok = stringOrNumber(idRaw); !ok {
		return f, ReasonMalformed, "id", "id is not a string or a number"
	}
	f.id = []byte(sid)
	if suser, ok = stringOrNumber(userRaw); !ok {
		return f, ReasonMalformed, "user_id", "user_id is not a string or a number"
	}
	f.userID = []byte(suser)
	if f.ts, ok = parseTS(tsRaw); !ok {
		return f, ReasonMalformed, "ts", "ts is not an RFC 3339 string or a unix time in seconds or milliseconds"
	}
	return f, "", "", ""
}

func FuzzDiffScan(f *testing.F) {
	for _, s := range []string{
		`{"text":"hello","id":1,"user_id":"u","ts":"2024-01-02T03:04:05Z"}`,
		`{"text":"","id":"x"}`, `{"text":"a\u0000b","ts":1700000000000}`, `[1,2,3]`, `{"text":`,
		"{\"text\":\"\xff\"}", `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"text":"x"}`,
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"text":"x"}`,
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"text":"x"}`,
		`{"text":"x","ts":1e300}`, `{"text":"x","ts":-9.5e15}`, `  `, `{}`, ` { "t\u0065xt" : "caf\u00e9 \ud83d" , "x":[ {"a":-0.5E+3}, true,false,null ] } `,
		`{"text":"x",}`, `{"text":"x"} x`, `{"text":01}`, `{"a":1.}`, `{"a":-}`, `{"a":"\x"}`, "{\"a\":\"\t\"}", `{"text":"é€𝄞"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		a1, a2, a3, a4 := scanJSON(v)
		b1, b2, b3, b4 := oldScanJSON(v)
		if string(a1.text) != string(b1.text) || string(a1.id) != string(b1.id) || string(a1.userID) != string(b1.userID) || !a1.ts.Equal(b1.ts) || a2 != b2 || a3 != b3 || a4 != b4 {
			t.Fatalf("%q: new %+v %q %q %q, old %+v %q %q %q", v, a1, a2, a3, a4, b1, b2, b3, b4)
		}
		// the fast path must accept exactly what the slow checks accept
		fast := scanObject(v, func(k, v []byte) {})
		slow := utf8.Valid(v) && walkObject(v, func(k, v []byte) {}) == ""
		if fast != slow {
			t.Fatalf("%q: fast %v slow %v", v, fast, slow)
		}
	})
}
