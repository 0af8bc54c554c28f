package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/upload"
)

// uploader is the payload client of c: no overall timeout (a payload of
// gigabytes takes minutes), resumable uploads and downloads.
func uploader(c *apiClient) upload.Client {
	return upload.Client{BaseURL: strings.TrimSuffix(c.base, api.Prefix), Token: c.token, HTTP: &http.Client{}}
}

// uploadBlob sends the payload r to the server unless it holds it already;
// sent says whether it did. open returns the payload from an offset.
func uploadBlob(ctx context.Context, c *apiClient, r project.TargetRef, open func(off int64) (io.ReadCloser, error), progress func(int64)) (sent bool, err error) {
	u := uploader(c)
	if stored, err := upload.Stored(ctx, u, r.SHA256, r.Length); err != nil {
		return false, err
	} else if stored {
		return false, nil
	}
	return true, upload.Blob(ctx, u, r.SHA256, r.Length, open, progress)
}

// downloadBlob fetches the payload r from the server into p's blob store,
// through DIR/pull/SHA256 (a download interrupted there continues at the
// next pull).
func downloadBlob(ctx context.Context, c *apiClient, p *project.Project, r project.TargetRef, progress func(int64)) error {
	dir := filepath.Join(p.Dir, "pull")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dst := filepath.Join(dir, r.SHA256)
	if err := upload.Download(ctx, uploader(c), r.SHA256, r.Length, dst, progress); err != nil {
		return err
	}
	f, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer os.Remove(dst)
	defer f.Close()
	info, err := p.Blobs.Put(ctx, f, r.Length)
	if err != nil {
		return err
	}
	if info.SHA256 != r.SHA256 {
		return fmt.Errorf("the downloaded payload hashes to %s, the metadata says %s", info.SHA256, r.SHA256)
	}
	return nil
}
