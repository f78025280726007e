package stream

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
)

// secret is planted in bad messages; it must never show up in an error.
const secret = "SECRET-7f3a9c-do-not-leak"

func msg(value string) kafka.Message {
	return kafka.Message{Topic: "instructions", Partition: 2, Offset: 41, Value: []byte(value)}
}

func TestDecodeRejects(t *testing.T) {
	deep := strings.Repeat(`[`, 40) + `"` + secret + `"` + strings.Repeat(`]`, 40)
	tests := []struct {
		name   string
		dec    Decoder
		value  string
		reason Reason
		field  string
	}{
		{"not json", Decoder{}, `{"text": "` + secret + `"`, ReasonMalformed, ""},
		{"garbage", Decoder{}, secret, ReasonMalformed, ""},
		{"array", Decoder{}, `["` + secret + `"]`, ReasonMalformed, ""},
		{"string", Decoder{}, `"` + secret + `"`, ReasonMalformed, ""},
		{"null", Decoder{}, `null`, ReasonMalformed, ""},
		{"text number", Decoder{}, `{"text": 12345678, "x": "` + secret + `"}`, ReasonMalformed, "text"},
		{"text object", Decoder{}, `{"text": {"a": "` + secret + `"}}`, ReasonMalformed, "text"},
		{"id bool", Decoder{}, `{"text": "` + secret + `", "id": true}`, ReasonMalformed, "id"},
		{"user_id array", Decoder{}, `{"text": "` + secret + `", "user_id": ["u"]}`, ReasonMalformed, "user_id"},
		{"ts words", Decoder{}, `{"text": "hi", "ts": "` + secret + `"}`, ReasonMalformed, "ts"},
		{"ts bool", Decoder{}, `{"text": "hi", "ts": false}`, ReasonMalformed, "ts"},
		{"too deep", Decoder{}, `{"text": "hi", "extra": ` + deep + `}`, ReasonMalformed, ""},
		{"missing text", Decoder{}, `{"id": "` + secret + `"}`, ReasonEmptyText, "text"},
		{"null text", Decoder{}, `{"text": null, "id": "` + secret + `"}`, ReasonEmptyText, "text"},
		{"blank text", Decoder{}, `{"text": " \t\n ", "id": "` + secret + `"}`, ReasonEmptyText, "text"},
		{"escaped blank text", Decoder{}, `{"text": "\n\u0020", "id": "` + secret + `"}`, ReasonEmptyText, "text"},
		{"wrong case name", Decoder{}, `{"Text": "` + secret + `"}`, ReasonEmptyText, "text"},
		{"json bad utf8", Decoder{}, `{"text": "` + secret + "\xff\xfe" + `"}`, ReasonInvalidUTF8, ""},
		{"text bad utf8", Decoder{Format: FormatText}, secret + "\xc3\x28", ReasonInvalidUTF8, ""},
		{"text blank", Decoder{Format: FormatText}, " \r\n\t", ReasonEmptyText, ""},
		{"text empty", Decoder{Format: FormatText}, "", ReasonEmptyText, ""},
		{"json oversized", Decoder{MaxMessageBytes: 32}, `{"text": "` + secret + secret + `"}`, ReasonOversized, ""},
		{"text oversized", Decoder{Format: FormatText, MaxMessageBytes: 8}, secret, ReasonOversized, ""},
		// Size is checked before anything else, so a huge malformed value
		// costs nothing to reject.
		{"oversized beats malformed", Decoder{MaxMessageBytes: 8}, `{` + secret, ReasonOversized, ""},
		{"default limit", Decoder{}, `{"text": "` + strings.Repeat("a", DefaultMaxMessageBytes) + `"}`, ReasonOversized, ""},
		// Hostile input.
		{"10 MB line", Decoder{}, `{"text": "` + secret + strings.Repeat("b", 10<<20) + `"}`, ReasonOversized, ""},
		{"json bomb (deep nesting)", Decoder{}, `{"text": "hi", "x": ` + strings.Repeat(`{"a":`, 100000) + `1` + strings.Repeat(`}`, 100000) + `}`, ReasonMalformed, ""},
		{"raw control character in a string", Decoder{}, "{\"text\": \"" + secret + "\x00\x1b[2J\"}", ReasonMalformed, ""},
		{"raw newline in a string", Decoder{}, "{\"text\": \"" + secret + "\nrm -rf\"}", ReasonMalformed, ""},
		{"overlong utf8 encoding", Decoder{}, `{"text": "` + secret + "\xc0\xaf" + `"}`, ReasonInvalidUTF8, ""},
		{"utf8 surrogate half", Decoder{}, `{"text": "` + secret + "\xed\xa0\x80" + `"}`, ReasonInvalidUTF8, ""},
		{"text format invalid utf8", Decoder{Format: FormatText}, "\xff" + secret, ReasonInvalidUTF8, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := msg(tt.value)
			_, err := tt.dec.Decode(m)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error = %v, want *DecodeError", err)
			}
			if de.Reason != tt.reason || de.Field != tt.field {
				t.Errorf("reason, field = %q, %q; want %q, %q (%v)", de.Reason, de.Field, tt.reason, tt.field, err)
			}
			if de.Topic != m.Topic || de.Partition != int32(m.Partition) || de.Offset != m.Offset {
				t.Errorf("location = %s/%d@%d, want %s/%d@%d", de.Topic, de.Partition, de.Offset, m.Topic, m.Partition, m.Offset)
			}
			assertNoLeak(t, err, m.Value)
			if r, ok := ReasonOf(err); !ok || r != tt.reason {
				t.Errorf("ReasonOf = %q, %v", r, ok)
			}
			if !errors.Is(err, &DecodeError{Reason: tt.reason}) {
				t.Errorf("errors.Is does not match reason %q", tt.reason)
			}
		})
	}
}

func assertNoLeak(t *testing.T, err error, value []byte) {
	t.Helper()
	s := err.Error()
	if strings.Contains(s, secret) || strings.Contains(s, secret[:8]) {
		t.Errorf("error leaks message content: %s", s)
	}
	if len(value) >= 8 && strings.Contains(s, string(value)) {
		t.Errorf("error contains the whole value: %s", s)
	}
}

func TestDecodeAccepts(t *testing.T) {
	msgTime := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		dec  Decoder
		m    kafka.Message
		want Record
	}{
		{
			name: "json minimal",
			m:    kafka.Message{Topic: "t", Partition: 1, Offset: 7, Value: []byte(`{"text":"hello"}`)},
			want: Record{ID: "t/1/7", Text: "hello", Partition: 1, Offset: 7},
		},
		{
			name: "json all fields",
			m: kafka.Message{Topic: "t", Offset: 3, Time: msgTime,
				Value: []byte(` {"id":"a1","user_id":"u9","ts":"2024-05-06T07:08:09.123+02:00","text":"  Write a haiku\n","extra":{"deep":[1,2,{"x":null}]}} `)},
			want: Record{ID: "a1", UserID: "u9", Text: "  Write a haiku\n", EventTime: time.Date(2024, 5, 6, 5, 8, 9, 123e6, time.UTC), Offset: 3},
		},
		{
			name: "json numeric ids and seconds",
			m:    kafka.Message{Value: []byte(`{"text":"x","id":12,"user_id":-3.5e2,"ts":1700000000}`)},
			want: Record{ID: "12", UserID: "-3.5e2", Text: "x", EventTime: time.Unix(1700000000, 0).UTC()},
		},
		{
			name: "json millis",
			m:    kafka.Message{Value: []byte(`{"text":"x","id":"i","ts":1700000000123}`)},
			want: Record{ID: "i", Text: "x", EventTime: time.UnixMilli(1700000000123).UTC()},
		},
		{
			name: "json fractional seconds",
			m:    kafka.Message{Value: []byte(`{"text":"x","id":"i","ts":1700000000.5}`)},
			want: Record{ID: "i", Text: "x", EventTime: time.Unix(1700000000, 5e8).UTC()},
		},
		{
			name: "json escapes and last duplicate wins",
			m:    kafka.Message{Value: []byte(`{"text":"old","t\u0065xt":"caf\u00e9 \"q\" \ud83d\ude00","id":"i"}`)},
			want: Record{ID: "i", Text: "café \"q\" 😀"},
		},
		{
			name: "json nulls are absent",
			dec:  Decoder{UserIDFromKey: true},
			m:    kafka.Message{Key: []byte("k1"), Time: msgTime, Value: []byte(`{"text":"x","id":null,"user_id":null,"ts":null}`)},
			want: Record{ID: "/0/0", UserID: "k1", Text: "x", EventTime: msgTime},
		},
		{
			name: "user field beats key",
			dec:  Decoder{UserIDFromKey: true},
			m:    kafka.Message{Key: []byte("k1"), Value: []byte(`{"text":"x","id":"i","user_id":"u"}`)},
			want: Record{ID: "i", UserID: "u", Text: "x"},
		},
		{
			name: "key ignored unless asked",
			m:    kafka.Message{Key: []byte("k1"), Value: []byte(`{"text":"x","id":"i"}`)},
			want: Record{ID: "i", Text: "x"},
		},
		{
			name: "text format keeps bytes",
			dec:  Decoder{Format: FormatText, UserIDFromKey: true},
			m:    kafka.Message{Topic: "t", Partition: 2, Offset: 9, Key: []byte("u"), Time: msgTime, Value: []byte(" {not json} \n")},
			want: Record{ID: "t/2/9", UserID: "u", Text: " {not json} \n", EventTime: msgTime, Partition: 2, Offset: 9},
		},
		{
			name: "exactly at the limit",
			dec:  Decoder{Format: FormatText, MaxMessageBytes: 5},
			m:    kafka.Message{Value: []byte("12345")},
			want: Record{ID: "/0/0", Text: "12345"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.dec.Decode(tt.m)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !got.EventTime.Equal(tt.want.EventTime) {
				t.Errorf("EventTime = %v, want %v", got.EventTime, tt.want.EventTime)
			}
			got.EventTime, tt.want.EventTime = time.Time{}, time.Time{}
			if got != tt.want {
				t.Errorf("Decode = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeKeyNotUTF8(t *testing.T) {
	d := Decoder{UserIDFromKey: true}
	_, err := d.Decode(kafka.Message{Key: []byte(secret + "\xff"), Value: []byte(`{"text":"x"}`)})
	var de *DecodeError
	if !errors.As(err, &de) || de.Reason != ReasonInvalidUTF8 || de.Field != "key" {
		t.Fatalf("err = %v, want invalid_utf8 on key", err)
	}
	assertNoLeak(t, err, nil)
}

func TestDecodeUnknownFormat(t *testing.T) {
	_, err := Decoder{Format: "xml"}.Decode(msg(`{"text":"x"}`))
	if err == nil {
		t.Fatal("want error for unknown format")
	}
	if _, ok := ReasonOf(err); ok {
		t.Errorf("config error reported as a message error: %v", err)
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("ParseFormat accepted yaml")
	}
	if f, err := ParseFormat(""); err != nil || f != FormatJSON {
		t.Errorf("ParseFormat(\"\") = %q, %v", f, err)
	}
}

// marker is appended to fuzz inputs: any error text containing it quoted
// input.
const marker = "QZXJ-marker-8841"

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"text":"hello","id":1,"user_id":"u","ts":"2024-01-02T03:04:05Z"}`,
		`{"text":"","id":"x"}`,
		`{"text":"a\u0000b","ts":1700000000000}`,
		`[1,2,3]`,
		`{"text":`,
		"{\"text\":\"\xff\"}",
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"text":"x"}`,
		`{"text":"x","ts":1e300}`,
		`{"text":"x","ts":-9.5e15}`,
		`  `,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, value []byte, text bool) {
		d := Decoder{MaxMessageBytes: 4096, UserIDFromKey: true}
		if text {
			d.Format = FormatText
		}
		// Plant the marker inside the value in a few shapes so that an error
		// quoting input would quote the marker.
		for _, v := range [][]byte{
			value,
			append(bytes.Clone(value), marker...),
			append([]byte(marker), value...),
			[]byte(`{"text":` + string(value) + `,"m":"` + marker + `"}`),
			[]byte(`{"m":"` + marker + `","ts":` + string(value) + `,"text":"x"}`),
		} {
			m := kafka.Message{Topic: "t", Partition: 1, Offset: 2, Key: []byte(marker), Value: v}
			r, err := d.Decode(m)
			if err != nil {
				s := err.Error()
				if strings.Contains(s, marker) || (len(v) >= 8 && strings.Contains(s, string(v))) {
					t.Fatalf("error quotes input: %s", s)
				}
				if _, ok := ReasonOf(err); !ok {
					t.Fatalf("error without reason: %v", err)
				}
				continue
			}
			if !utf8.ValidString(r.Text) || strings.TrimSpace(r.Text) == "" {
				t.Fatalf("accepted bad text %q", r.Text)
			}
			if !utf8.ValidString(r.ID) || !utf8.ValidString(r.UserID) || r.ID == "" {
				t.Fatalf("accepted bad id %q or user %q", r.ID, r.UserID)
			}
		}
	})
}
