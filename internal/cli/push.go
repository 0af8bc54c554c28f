package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/progress"
	"github.com/uptrust/uptrust/internal/project"
)

// PushJSON is what `uptrust push --json` and `uptrust pull --json` print.
type PushJSON struct {
	Server string `json:"server"`
	// Uploaded and Skipped count payloads sent and payloads the other side
	// held already; Bytes is what was sent.
	Uploaded int   `json:"payloads_uploaded"`
	Skipped  int   `json:"payloads_present"`
	Bytes    int64 `json:"payload_bytes"`
	project.AcceptResult
}

func cmdServerKit(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "server-kit", Synopsis: "write the directory a server starts from: configuration, online keys, trusted roots",
		Long: `The kit holds uptrust.json, keys/online/ and trusted/, the root chains of both
repositories, and no offline key. Copy it to the server and start
uptrust serve --dir KIT there (with --database and --blobs for a team): at its first
start the server trusts those roots, and from then on accepts only pushes
(uptrust push) signed by keys the roots name.`,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			out := fs.String("out", "", "the kit's `directory`, new or empty (required)")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 || *out == "" {
					return usagef("server-kit takes no arguments and needs --out DIR")
				}
				p, err := openProject(ctx, env, *dir)
				if err != nil {
					return err
				}
				defer p.Close()
				if err := p.WriteServerKit(ctx, *out); err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "wrote the server kit to %s (uptrust.json, keys/online, trusted roots; no offline key)\n", *out)
				fmt.Fprintf(env.Stdout, "  on the server: uptrust serve --dir %s --admin-listen 127.0.0.1:9090 --bootstrap-token-file %s/admin-token\n", *out, *out)
				return nil
			}
		}}
}

func cmdPush(env Env) *cmdline.Command {
	return peerCommand(env, "push", "publish what this offline project signed to a running server",
		`Uploads the payloads the server lacks (resumable, skipping what it holds),
then the metadata signed offline since the server's copy: roots, targets,
product roles. The server checks every document against the roots it trusts
and accepts all of it or nothing, then signs snapshot and timestamp itself.
A push built on older metadata than the server's is refused: run uptrust pull
first. Needs a release-manager token.`, runPush)
}

func cmdPull(env Env) *cmdline.Command {
	return peerCommand(env, "pull", "bring this offline project up to a server's published metadata",
		`Downloads the metadata signed offline that the server holds and this project
lacks (published from another offline machine), checks it against this
project's roots as the server did, and the payloads it names, so that this
project can sign on top of it. Refused when this project and the server hold
different copies of a version.`, runPull)
}

// peerCommand is push or pull: the project directory and a server at once.
func peerCommand(env Env, name, synopsis, long string, run func(context.Context, Env, *project.Project, *apiClient, bool) (PushJSON, error)) *cmdline.Command {
	return &cmdline.Command{Name: name, Synopsis: synopsis, Long: long,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("%s takes no arguments", name)
				}
				c, err := rf.peer(name)
				if err != nil {
					return err
				}
				p, err := openProject(ctx, env, *dir)
				if err != nil {
					return err
				}
				defer p.Close()
				out, err := run(ctx, env, p, c, *asJSON)
				if err != nil {
					return err
				}
				return printPush(env, name, out, *asJSON)
			}
		}}
}

func printPush(env Env, verb string, out PushJSON, asJSON bool) error {
	if asJSON {
		return writeJSON(env.Stdout, out)
	}
	if len(out.Accepted) == 0 {
		fmt.Fprintf(env.Stdout, "%s: nothing to do: this project and %s hold the same signed metadata\n", verb, out.Server)
		return nil
	}
	fmt.Fprintf(env.Stdout, "%s: %d payloads transferred (%d bytes), %d present already\n", verb, out.Uploaded, out.Bytes, out.Skipped)
	fmt.Fprintf(env.Stdout, "%s: %d documents accepted: %s\n", verb, len(out.Accepted), strings.Join(out.Accepted, ", "))
	for _, l := range []struct {
		what string
		list []string
	}{{"products added", out.Products}, {"releases added", out.Releases}, {"support declarations changed", out.Support}} {
		if len(l.list) > 0 {
			fmt.Fprintf(env.Stdout, "%s: %s: %s\n", verb, l.what, strings.Join(l.list, ", "))
		}
	}
	return nil
}

// runPush uploads the payloads, then the documents, that the server lacks.
func runPush(ctx context.Context, env Env, p *project.Project, c *apiClient, quiet bool) (PushJSON, error) {
	out := PushJSON{Server: strings.TrimSuffix(c.base, api.Prefix)}
	var st api.MetadataState
	if _, err := c.get(ctx, "/metadata", nil, &st); err != nil {
		return out, err
	}
	docs, err := p.Outgoing(ctx, st.Roles)
	if err != nil {
		return out, err
	}
	if len(docs) == 0 {
		return out, nil
	}
	refs := project.TargetsNamed(docs)
	var total int64
	for _, r := range refs {
		total += r.Length
	}
	bar := progress.ForWriter(env.Stderr, quiet)
	bar.Start("uploading payloads", total)
	var done int64
	for _, r := range refs {
		sent, err := uploadBlob(ctx, c, r, func(off int64) (io.ReadCloser, error) {
			obj, err := p.Blobs.Open(ctx, r.SHA256)
			if err != nil {
				return nil, err
			}
			if _, err := obj.Seek(off, io.SeekStart); err != nil {
				obj.Close()
				return nil, err
			}
			return obj, nil
		}, func(n int64) { bar.Set(done + n) })
		if err != nil {
			bar.Done()
			return out, fmt.Errorf("push: uploading %s: %w", r.Path, err)
		}
		done += r.Length
		bar.Set(done)
		if sent {
			out.Uploaded++
			out.Bytes += r.Length
		} else {
			out.Skipped++
		}
	}
	bar.Done()
	req := api.PushRequest{Metadata: make([]api.PushDocument, len(docs))}
	for i, d := range docs {
		req.Metadata[i] = api.PushDocument{Repo: d.Repo, Role: d.Role, Version: d.Version, Body: d.Body}
	}
	if _, err := c.do(ctx, http.MethodPost, "/push", nil, req, nil, &out.AcceptResult); err != nil {
		return out, err
	}
	return out, nil
}

// runPull downloads the documents and payloads the server holds and p
// lacks, and accepts them.
func runPull(ctx context.Context, env Env, p *project.Project, c *apiClient, quiet bool) (PushJSON, error) {
	out := PushJSON{Server: strings.TrimSuffix(c.base, api.Prefix)}
	var st api.MetadataState
	if _, err := c.get(ctx, "/metadata", nil, &st); err != nil {
		return out, err
	}
	docs, err := p.Incoming(ctx, st.Roles, func(name, role string, v int64) ([]byte, error) {
		return c.raw(ctx, "/metadata/"+url.PathEscape(name)+"/"+url.PathEscape(role)+"/"+strconv.FormatInt(v, 10))
	})
	if err != nil {
		return out, err
	}
	if len(docs) == 0 {
		return out, nil
	}
	bar := progress.ForWriter(env.Stderr, quiet)
	var missing []project.TargetRef
	var total int64
	for _, r := range project.TargetsNamed(docs) {
		if _, err := p.Blobs.Stat(ctx, r.SHA256); err == nil {
			out.Skipped++
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return out, err
		}
		missing = append(missing, r)
		total += r.Length
	}
	bar.Start("downloading payloads", total)
	var done int64
	for _, r := range missing {
		if err := downloadBlob(ctx, c, p, r, func(n int64) { bar.Set(done + n) }); err != nil {
			bar.Done()
			return out, fmt.Errorf("pull: downloading %s: %w", r.Path, err)
		}
		done += r.Length
		out.Uploaded++
		out.Bytes += r.Length
	}
	bar.Done()
	res, err := p.AcceptSigned(ctx, docs, project.ActionPull)
	if err != nil {
		return out, fmt.Errorf("pull: %w", err)
	}
	out.AcceptResult = res
	if err := p.WriteDeviceRoots(ctx); err != nil {
		return out, err
	}
	return out, nil
}

// raw GETs path and returns the body of a 2xx answer.
func (c *apiClient) raw(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, api.MaxPushBody))
	if err != nil {
		return nil, fmt.Errorf("server: GET %s: %w", path, err)
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("server: GET %s: %s", path, resp.Status)
	}
	return b, nil
}
