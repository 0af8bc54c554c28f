package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/api"
)

func hexSHA(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestBlobRoutes: a resumable upload through PUT and HEAD (a body that ends
// early keeps what arrived, a wrong offset is 409 with the right one, the
// rest completes the blob), reading it back whole and by range, dedup,
// and bad input: hash mismatch (nothing left behind), malformed sha and
// headers, wrong content type, above max_payload_bytes. No upload writes
// an audit entry or changes what devices see; every answer matches the
// OpenAPI document (env.do checks).
func TestBlobRoutes(t *testing.T) {
	e := newEnv(t)
	before := e.state()
	audit, err := e.p.Audit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	data := strings.Repeat("uptrust payload ", 5000)
	sha := hexSHA(data)
	path := "/api/v1/blobs/" + sha
	size := fmt.Sprint(len(data))
	put := func(offset int, body string, hdr ...string) (int, string, string) {
		t.Helper()
		h := append([]string{"Content-Type", "application/octet-stream", api.HeaderUploadLength, size,
			api.HeaderUploadOffset, fmt.Sprint(offset)}, hdr...)
		resp, b := e.do("PUT", path, "release-manager", body, h...)
		return resp.StatusCode, resp.Header.Get(api.HeaderUploadOffset), string(b)
	}
	head := func(p string) (int, string, string) {
		t.Helper()
		resp, _ := e.do("HEAD", p, "release-manager", "")
		return resp.StatusCode, resp.Header.Get(api.HeaderUploadOffset), resp.Header.Get("Content-Length")
	}

	if st, off, _ := head(path); st != 404 || off != "0" {
		t.Fatalf("HEAD of an unknown blob: %d, Upload-Offset %q; want 404, 0", st, off)
	}
	// The first 30000 bytes, then the body ends: kept.
	if st, off, b := put(0, data[:30000]); st != 400 || off != "30000" {
		t.Fatalf("PUT of a short body: %d, Upload-Offset %q; want 400, 30000\n%s", st, off, b)
	}
	if st, off, _ := head(path); st != 404 || off != "30000" {
		t.Fatalf("HEAD of a partial upload: %d, Upload-Offset %q; want 404, 30000", st, off)
	}
	if st, off, b := put(0, data); st != 409 || off != "30000" {
		t.Fatalf("PUT at a wrong offset: %d, Upload-Offset %q; want 409, 30000\n%s", st, off, b)
	}
	st, _, b := put(30000, data[30000:])
	if st != 201 {
		t.Fatalf("PUT of the rest: %d, want 201\n%s", st, b)
	}
	var info api.BlobInfo
	if err := json.Unmarshal([]byte(b), &info); err != nil || info.SHA256 != sha || fmt.Sprint(info.Size) != size {
		t.Fatalf("PUT answered %s (%v)", b, err)
	}
	if st, _, cl := head(path); st != 200 || cl != size {
		t.Fatalf("HEAD of a stored blob: %d, Content-Length %q; want 200, %s", st, cl, size)
	}
	if st, _, b := put(0, data); st != 200 || !strings.Contains(b, sha) {
		t.Fatalf("PUT of a stored blob: %d, want 200\n%s", st, b)
	}
	resp, got := e.do("GET", path, "release-manager", "")
	if resp.StatusCode != 200 || string(got) != data {
		t.Fatalf("GET: %d, %d bytes, equal %v", resp.StatusCode, len(got), string(got) == data)
	}
	resp, got = e.do("GET", path, "release-manager", "", "Range", "bytes=70000-")
	if resp.StatusCode != 206 || string(got) != data[70000:] {
		t.Fatalf("GET of a range: %d, %d bytes, equal %v", resp.StatusCode, len(got), string(got) == data[70000:])
	}

	// A hash mismatch, after a partial upload: 422, nothing left.
	other := strings.Repeat("x", 1000)
	wrong := "/api/v1/blobs/" + hexSHA(other)
	resp, b2 := e.do("PUT", wrong, "release-manager", strings.Repeat("y", 500), "Content-Type", "application/octet-stream", api.HeaderUploadLength, "1000")
	if resp.StatusCode != 400 {
		t.Fatalf("partial wrong upload: %d\n%s", resp.StatusCode, b2)
	}
	resp, b2 = e.do("PUT", wrong, "release-manager", strings.Repeat("y", 500), "Content-Type", "application/octet-stream",
		api.HeaderUploadLength, "1000", api.HeaderUploadOffset, "500")
	if resp.StatusCode != 422 {
		t.Fatalf("mismatching upload: %d, want 422\n%s", resp.StatusCode, b2)
	}
	if st, off, _ := head(wrong); st != 404 || off != "0" {
		t.Fatalf("HEAD after a mismatch: %d, Upload-Offset %q; want 404, 0", st, off)
	}

	// Bad input.
	octet := "application/octet-stream"
	e.p.Config.MaxPayloadBytes = 100
	for _, tc := range []struct {
		name, path, body string
		hdr              []string
		want             int
	}{
		{"malformed sha", "/api/v1/blobs/ABC", "x", []string{"Content-Type", octet, api.HeaderUploadLength, "1"}, 400},
		{"no Upload-Length", wrong, "x", []string{"Content-Type", octet}, 400},
		{"bad Upload-Length", wrong, "x", []string{"Content-Type", octet, api.HeaderUploadLength, "-1"}, 400},
		{"bad Upload-Offset", wrong, "x", []string{"Content-Type", octet, api.HeaderUploadLength, "1000", api.HeaderUploadOffset, "x"}, 400},
		{"body past the size", wrong, "xx", []string{"Content-Type", octet, api.HeaderUploadLength, "1"}, 400},
		{"content type", wrong, "x", []string{"Content-Type", "application/json", api.HeaderUploadLength, "1"}, 415},
		{"above max_payload_bytes", wrong, "x", []string{"Content-Type", octet, api.HeaderUploadLength, "1000"}, 413},
	} {
		resp, b := e.do("PUT", tc.path, "release-manager", tc.body, tc.hdr...)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d\n%s", tc.name, resp.StatusCode, tc.want, b)
		}
	}
	e.p.Config.MaxPayloadBytes = 0
	if st, _, _ := head("/api/v1/blobs/xyz"); st != 400 {
		t.Errorf("HEAD of a malformed sha: %d, want 400", st)
	}
	if resp, _ := e.do("GET", wrong, "release-manager", ""); resp.StatusCode != 404 {
		t.Errorf("GET of an unknown blob: %d, want 404", resp.StatusCode)
	}

	if e.state() != before {
		t.Error("blob uploads changed what devices see")
	}
	if after, err := e.p.Audit(t.Context()); err != nil || len(after) != len(audit) {
		t.Errorf("blob uploads wrote %d audit entries (%v), want none", len(after)-len(audit), err)
	}
}
