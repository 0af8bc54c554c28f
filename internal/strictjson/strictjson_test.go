package strictjson

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

type dur time.Duration

func (d *dur) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want e.g. 6h", s)
	}
	*d = dur(v)
	return nil
}

type inner struct {
	Audit   dur `json:"audit"`
	Reports dur `json:"report_counts"`
}

type conf struct {
	Name      string   `json:"name"`
	Interval  dur      `json:"poll_interval,omitempty"`
	Limit     int64    `json:"limit" zero:"ok"`
	Attempts  int      `json:"max_attempts"`
	Retention inner    `json:"retention"`
	Ptr       *inner   `json:"lifetimes,omitempty"`
	Flag      *bool    `json:"reports"`
	List      []string `json:"notify"`
}

func TestDecodeGood(t *testing.T) {
	var c conf
	err := Decode("x.json", []byte(`{"name":"a","poll_interval":"6h","limit":0,"max_attempts":3,
		"retention":{"audit":"1h"},"lifetimes":{"report_counts":"2h"},"reports":false,"notify":["a","b"]}`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "a" || time.Duration(c.Interval) != 6*time.Hour || c.Attempts != 3 || time.Duration(c.Retention.Audit) != time.Hour ||
		c.Ptr == nil || time.Duration(c.Ptr.Reports) != 2*time.Hour || c.Flag == nil || *c.Flag || len(c.List) != 2 {
		t.Fatalf("decoded %+v", c)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"{\n  \"name\": \"a\",\n  \"retentoin\": {}\n}", `x.json:3:3: unknown field "retentoin" (did you mean "retention"?)`},
		{"{\"retention\": {\n    \"audti\": \"1h\"}}", `x.json:2:5: unknown field "retention.audti" (did you mean "audit"?)`},
		{"{\"lifetimes\": {\"zzzzzzzzz\": \"1h\"}}", `x.json:1:16: unknown field "lifetimes.zzzzzzzzz" (known: audit, report_counts)`},
		{"{\"poll_interval\": \"6 hours\"}", `x.json:1:19: poll_interval: duration "6 hours": want e.g. 6h`},
		{"{\"retention\": {\"audit\": 5}}", `x.json:1:25: retention.audit: duration: want a string`},
		{"{\"max_attempts\": -1}", `x.json:1:18: max_attempts: -1 is negative`},
		{"{\"max_attempts\": 0}", `x.json:1:18: max_attempts: 0 must be positive`},
		{"{\"poll_interval\": \"0s\"}", `x.json:1:19: poll_interval: "0s" must be positive`},
		{"{\"limit\": -5}", `limit: -5 is negative`},
		{"{\"max_attempts\": \"3\"}", `x.json:1:18: max_attempts: "3" is not a whole number`},
		{"{\"reports\": 1}", `reports: 1 is not a boolean`},
		{"{\"name\": \"a\",\n\"x\" 1}", `x.json:2:`},
		{"[1]", `x.json:1:1: want a JSON object`},
		{"{} {}", `unexpected content`},
		{"{\"name\": \"a\"", `unexpected end of file`},
	} {
		var c conf
		err := Decode("x.json", []byte(tc.doc), &c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.doc, err, tc.want)
		}
	}
}

func TestNearest(t *testing.T) {
	names := []string{"retention", "report_k", "lifetimes", "download_rate_limit"}
	for in, want := range map[string]string{"retentoin": "retention", "download_rate_limt": "download_rate_limit",
		"report_K": "report_k", "colour": ""} {
		if got := Nearest(in, names); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", in, got, want)
		}
	}
	if d := Distance("kitten", "sitting"); d != 3 {
		t.Errorf("Distance = %d", d)
	}
}
