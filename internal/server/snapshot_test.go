package server

import (
	"strings"
	"testing"
)

func TestNewSnapshotRejects(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	good := PayloadFile{Path: "/blobs/x", Size: 1, SHA256: digest}
	for _, tc := range []struct {
		name string
		c    *Content
		want string
	}{
		{"nil", nil, "content is nil"},
		{"outside repo", &Content{Metadata: map[string][]byte{"/etc/passwd": nil}}, "not under /repo/"},
		{"unclean", &Content{Metadata: map[string][]byte{"/repo/a/../b.json": nil}}, "not clean"},
		{"double slash", &Content{Payloads: map[string]PayloadFile{"/repo//x": good}}, "not clean"},
		{"both", &Content{
			Metadata: map[string][]byte{"/repo/x": nil},
			Payloads: map[string]PayloadFile{"/repo/x": good},
		}, "both metadata and payload"},
		{"upper-case digest", &Content{Payloads: map[string]PayloadFile{"/repo/x": {Path: "/b", SHA256: strings.ToUpper(digest)}}}, "not 64 lower-case hex"},
		{"short digest", &Content{Payloads: map[string]PayloadFile{"/repo/x": {Path: "/b", SHA256: "abcd"}}}, "not 64 lower-case hex"},
		{"negative size", &Content{Payloads: map[string]PayloadFile{"/repo/x": {Path: "/b", Size: -1, SHA256: digest}}}, "negative size"},
		{"no file", &Content{Payloads: map[string]PayloadFile{"/repo/x": {SHA256: digest}}}, "empty file path and no payload store"},
	} {
		_, err := newSnapshot(1, tc.c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestCachePolicy(t *testing.T) {
	digest := strings.Repeat("0f", 32)
	c := &Content{
		Metadata: map[string][]byte{
			"/repo/fleet/metadata/timestamp.json":             nil,
			"/repo/fleet/metadata/root.json":                  nil,
			"/repo/fleet/metadata/12.snapshot.json":           nil,
			"/repo/release/metadata/1.root.json":              nil,
			"/repo/fleet/metadata/2.products/thermostat.json": nil,
			"/repo/fleet/metadata/.json":                      nil,
			"/repo/fleet/metadata/3json":                      nil,
		},
		Payloads: map[string]PayloadFile{
			"/repo/release/targets/t/" + digest + ".1.0.0": {Path: "/b", SHA256: digest},
			"/repo/release/targets/t/" + digest:            {Path: "/b", SHA256: digest},
			"/repo/release/targets/t/thermostat-1.0.0.img": {Path: "/b", SHA256: digest},
		},
	}
	s, err := newSnapshot(1, c)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/repo/fleet/metadata/timestamp.json":             cacheRevalidate,
		"/repo/fleet/metadata/root.json":                  cacheRevalidate,
		"/repo/fleet/metadata/12.snapshot.json":           cacheImmutable,
		"/repo/release/metadata/1.root.json":              cacheImmutable,
		"/repo/fleet/metadata/2.products/thermostat.json": cacheImmutable,
		"/repo/fleet/metadata/.json":                      cacheRevalidate,
		"/repo/fleet/metadata/3json":                      cacheRevalidate,
		"/repo/release/targets/t/" + digest + ".1.0.0":    cacheImmutable,
		"/repo/release/targets/t/" + digest:               cacheImmutable,
		"/repo/release/targets/t/thermostat-1.0.0.img":    cacheRevalidate,
	}
	for p, w := range want {
		var got string
		if e := s.metadata[p]; e != nil {
			got = e.cacheHdr[0]
		} else if e := s.payloads[p]; e != nil {
			got = e.cacheHdr[0]
		}
		if got != w {
			t.Errorf("%s: Cache-Control %q, want %q", p, got, w)
		}
	}
}

func TestEtagMatches(t *testing.T) {
	const tag = `"abc"`
	for _, tc := range []struct {
		values []string
		want   bool
	}{
		{[]string{`"abc"`}, true},
		{[]string{`W/"abc"`}, true},
		{[]string{`"x", "abc"`}, true},
		{[]string{`"x"`, `"abc"`}, true},
		{[]string{` *`}, true},
		{[]string{`"x",W/"abc"`}, true},
		{[]string{`"ab"`}, false},
		{[]string{`"abcd"`}, false},
		{[]string{`abc`}, false},
		{[]string{`"abc`}, false},
		{[]string{``}, false},
		{nil, false},
	} {
		if got := etagMatches(tc.values, tag); got != tc.want {
			t.Errorf("etagMatches(%q) = %v, want %v", tc.values, got, tc.want)
		}
	}
}
