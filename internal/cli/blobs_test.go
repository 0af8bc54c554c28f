package cli_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/blob/s3test"
)

// Bad --blobs values and missing credentials are clear errors, and nothing
// is published.
func TestBlobsFlagBadInput(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "proj")
	mustRun(t, nil, "init", "--dir", dir, "--dev")
	creds := map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}
	if r := run(t, creds, "serve", "--dir", dir, "--blobs", "/srv/blobs"); r.code != 1 || !strings.Contains(r.stderr, "want s3://BUCKET") {
		t.Errorf("serve --blobs PATH: %v", r)
	}
	if r := run(t, map[string]string{"UPTRUST_BLOBS": "s3://fw?endpint=http://127.0.0.1:1"}, "product", "add", "p", "--hardware", "a",
		"--support-until", "2031-12-31", "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, `unknown parameter "endpint"`) {
		t.Errorf("UPTRUST_BLOBS with a misspelt parameter: %v", r)
	}
	payload := writeFile(t, tmp, "img", "image")
	if r := run(t, nil, "release", "add", "p", "1.0.0", payload, "--kind", "fix", "--security-version", "1", "--dir", dir,
		"--blobs", "s3://fw?endpoint=http://127.0.0.1:1"); r.code != 1 || !strings.Contains(r.stderr, "AWS_ACCESS_KEY_ID") {
		t.Errorf("release add --blobs without credentials: %v", r)
	}
	if r := run(t, creds, "blobs", "copy", "--dir", dir); r.code != 2 || !strings.Contains(r.stderr, "--to") {
		t.Errorf("blobs copy without --to: %v", r)
	}
	if r := mustRun(t, nil, "product", "list", "--dir", dir); strings.Contains(r.stdout, "p ") {
		t.Errorf("a product was added despite the errors:\n%s", r.stdout)
	}
}

// product add and release add with --blobs store into a real bucket, not
// blobs/; blobs copy copies a filesystem project's blobs into a bucket and
// skips them the second time.
func TestBlobsInBucket(t *testing.T) {
	srv := s3test.Start(t)
	vars := map[string]string{"AWS_ACCESS_KEY_ID": s3test.AccessKey, "AWS_SECRET_ACCESS_KEY": s3test.SecretKey}
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "proj")
	mustRun(t, vars, "init", "--dir", dir, "--dev")
	mustRun(t, vars, "product", "add", "p", "--hardware", "a", "--support-until", "2031-12-31", "--dir", dir, "--blobs", srv.URL())
	payload := writeFile(t, tmp, "img", strings.Repeat("image", 5000))
	mustRun(t, vars, "release", "add", "p", "1.0.0", payload, "--kind", "fix", "--security-version", "1", "--dir", dir, "--blobs", srv.URL())
	ents, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if len(ents) != 0 {
		t.Errorf("blobs/ holds %d entries although --blobs names a bucket", len(ents))
	}
	st, err := blob.OpenURL(t.Context(), srv.URL(), s3test.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(t.Context(), sha256Hex([]byte(strings.Repeat("image", 5000)))); err != nil {
		t.Errorf("payload not in the bucket: %v", err)
	}
	// The support declaration and the payload, under their addresses only.
	var keys []string
	for o := range srv.Client().ListObjects(t.Context(), srv.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if len(keys) != 2 || !strings.HasPrefix(keys[0], "sha256/") || !strings.HasPrefix(keys[1], "sha256/") {
		t.Errorf("the bucket holds %v, want two blobs under sha256/", keys)
	}

	fsdir := filepath.Join(tmp, "fsproj")
	mustRun(t, nil, "init", "--dir", fsdir, "--dev")
	mustRun(t, nil, "product", "add", "q", "--hardware", "a", "--support-until", "2031-12-31", "--dir", fsdir)
	other := writeFile(t, tmp, "img2", strings.Repeat("other", 5000))
	mustRun(t, nil, "release", "add", "q", "1.0.0", other, "--kind", "fix", "--security-version", "1", "--dir", fsdir)
	r := mustRun(t, vars, "blobs", "copy", "--dir", fsdir, "--to", srv.URL())
	if !strings.Contains(r.stdout, "copied 2 blobs") || !strings.Contains(r.stdout, "(0 there already)") {
		t.Errorf("blobs copy:\n%s", r.stdout)
	}
	if _, err := st.Stat(t.Context(), sha256Hex([]byte(strings.Repeat("other", 5000)))); err != nil {
		t.Errorf("copied payload not in the bucket: %v", err)
	}
	r = mustRun(t, vars, "blobs", "copy", "--dir", fsdir, "--to", srv.URL())
	if !strings.Contains(r.stdout, "copied 0 blobs") || !strings.Contains(r.stdout, "(2 there already)") {
		t.Errorf("second blobs copy:\n%s", r.stdout)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
