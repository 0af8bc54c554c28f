package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/uptrust/uptrust/internal/project"
)

// bulk is the HTTP client for payloads: no overall timeout, a payload of
// gigabytes takes minutes.
var bulk = &http.Client{}

// uploadBlob sends the payload r to the server unless it holds it already;
// sent says whether it did. open returns the payload from an offset.
func uploadBlob(ctx context.Context, c *apiClient, r project.TargetRef, open func(off int64) (io.ReadCloser, error), progress func(int64)) (sent bool, err error) {
	head, err := http.NewRequestWithContext(ctx, http.MethodHead, c.base+"/blobs/"+r.SHA256, nil)
	if err != nil {
		return false, err
	}
	head.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := bulk.Do(head)
	if err != nil {
		return false, fmt.Errorf("server: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return false, nil
	}
	body, err := open(0)
	if err != nil {
		return false, err
	}
	defer body.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+"/blobs/"+r.SHA256, body)
	if err != nil {
		return false, err
	}
	req.ContentLength = r.Length
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Upload-Length", strconv.FormatInt(r.Length, 10))
	req.Header.Set("Upload-Offset", "0")
	resp, err = bulk.Do(req)
	if err != nil {
		return false, fmt.Errorf("server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return false, fmt.Errorf("server: PUT blob: %s: %s", resp.Status, b)
	}
	progress(r.Length)
	return true, nil
}

// downloadBlob fetches the payload r from the server into p's blob store.
func downloadBlob(ctx context.Context, c *apiClient, p *project.Project, r project.TargetRef, progress func(int64)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/blobs/"+r.SHA256, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := bulk.Do(req)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server: GET blob %s: %s", r.SHA256, resp.Status)
	}
	info, err := p.Blobs.Put(ctx, resp.Body, r.Length)
	if err != nil {
		return err
	}
	if info.SHA256 != r.SHA256 {
		return fmt.Errorf("the server's payload hashes to %s, the metadata says %s", info.SHA256, r.SHA256)
	}
	progress(r.Length)
	return nil
}
