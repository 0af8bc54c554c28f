package units

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"0": 0, "65536": 65536, "512KiB": 512 << 10, "4MiB": 4 << 20, "1.5MB": 1_500_000, " 2 gib ": 2 << 30,
		"1023": 1023, "1024GiB": 1 << 40, "1.5KiB": 1536, "100B": 100,
	} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"": "want a number", "lots": "want a number", "-1": "want a number", "4M": "want a number", "4MiB/s": "want a number",
		"1e3": "want a number", "1..2KiB": "want a number", "2TiB": "want a number",
		"1025GiB": "out of range", "99999999999999999999": "out of range",
	} {
		if got, err := ParseByteSize(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseByteSize(%q) = %d, %v; want an error saying %q", in, got, err, msg)
		}
	}
}

func TestByteSizeJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		out  string
	}{
		{`"4MiB"`, 4 << 20, `"4MiB"`},
		{`"768KiB"`, 768 << 10, `"768KiB"`},
		{`1048576`, 1 << 20, `"1MiB"`},
		{`1000`, 1000, `"1000"`},
		{`"1GiB"`, 1 << 30, `"1GiB"`},
		{`0`, 0, `"0"`},
	} {
		var b ByteSize
		if err := json.Unmarshal([]byte(tc.in), &b); err != nil || b != tc.want {
			t.Errorf("unmarshal %s = %d, %v; want %d", tc.in, b, err, tc.want)
		}
		out, _ := json.Marshal(b)
		if string(out) != tc.out {
			t.Errorf("marshal %d = %s, want %s", b, out, tc.out)
		}
	}
	for in, msg := range map[string]string{`-5`: "out of range", `1099511627777`: "out of range", `"lots"`: "want a number", `true`: "want a number", `{}`: "want a number"} {
		var b ByteSize
		if err := json.Unmarshal([]byte(in), &b); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("unmarshal %s = %d, %v; want an error saying %q", in, b, err, msg)
		}
	}
}

func TestParseByteRate(t *testing.T) {
	for in, want := range map[string]ByteRate{
		"0": 0, "1024": 1024, "65536": 65536, "512KiB": 512 << 10, "2MiB": 2 << 20, "2 MiB": 2 << 20,
		"1GiB": 1 << 30, "1.5MB": 1_500_000, "64kB": 64_000, "64KB": 64_000, "2mib/s": 2 << 20, "1.5KiB": 1536,
		"100000B": 100_000, " 3MiB ": 3 << 20, "1024.9": 1024,
	} {
		got, err := ParseByteRate(in)
		if err != nil || got != want {
			t.Errorf("ParseByteRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1MiB", "2M", "2 Mbit", "1023", "1KB", "MiB", "1e3", "0.5", "2TiB", "99999GiB", "1..2MiB"} {
		if got, err := ParseByteRate(in); err == nil {
			t.Errorf("ParseByteRate(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "download_rate_limit") {
			t.Errorf("ParseByteRate(%q): error %q does not name the setting", in, err)
		}
	}
}

func TestByteRateJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteRate
		out  string
	}{
		{`"2MiB"`, 2 << 20, `"2MiB"`},
		{`"1536KiB"`, 1536 << 10, `"1536KiB"`},
		{`1000000`, 1_000_000, `"1000000"`},
		{`0`, 0, `"0"`},
	} {
		var r ByteRate
		if err := json.Unmarshal([]byte(tc.in), &r); err != nil || r != tc.want {
			t.Errorf("unmarshal %s = %d, %v; want %d", tc.in, r, err, tc.want)
		}
		out, _ := json.Marshal(r)
		if string(out) != tc.out {
			t.Errorf("marshal %d = %s, want %s", r, out, tc.out)
		}
	}
	for _, in := range []string{`-5`, `12`, `true`, `"12"`, `{}`} {
		var r ByteRate
		if err := json.Unmarshal([]byte(in), &r); err == nil {
			t.Errorf("unmarshal %s succeeded: %d", in, r)
		}
	}
}

func TestByteRateValidate(t *testing.T) {
	for _, r := range []ByteRate{0, MinByteRate, 2 << 20, 1 << 40} {
		if err := r.Validate(); err != nil {
			t.Errorf("ByteRate(%d).Validate() = %v", r, err)
		}
	}
	for r, msg := range map[ByteRate]string{-1: "out of range", 1<<40 + 1: "out of range", MinByteRate - 1: "below the minimum"} {
		if err := r.Validate(); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ByteRate(%d).Validate() = %v, want an error saying %q", r, err, msg)
		}
	}
}
