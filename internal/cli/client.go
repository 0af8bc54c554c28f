package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/strictjson"
)

// ClientConfig is the client configuration file,
// $XDG_CONFIG_HOME/uptrust/client.json (else ~/.config/uptrust/client.json,
// or the file $UPTRUST_CLIENT_CONFIG names): the server and the token the
// operator's commands use when neither flags nor environment give them.
type ClientConfig struct {
	Server string `json:"server"`
	Token  string `json:"token" zero:"ok"`
}

// globalRemote is --server and --token given before the command
// (`uptrust --server URL rollout list`): the same as after it.
type globalRemote struct{ server, token *string }

func (g *globalRemote) define(fs *flag.FlagSet) {
	g.server = fs.String("server", "", "run the command against the management API at `URL` (the commands that take --server)")
	g.token = fs.String("token", "", "API token for --server")
}

// remoteCommands are the commands that can run against a server.
var remoteCommands = []string{"rollout start", "rollout set-percent", "rollout halt", "rollout resume", "rollout list",
	"release list", "product list", "product show", "reports", "audit", "audit verify", "token create", "token list", "token revoke",
	"settings show", "settings set", "compliance", "compliance attest", "compliance withdraw", "compliance attestations",
	"compliance market", "product mode", "product inventory", "enrollment-token create", "enrollment-token list",
	"enrollment-token revoke", "device list", "device show", "device accept", "device reject", "device decommission",
	"device preauthorize", "device export", "device erase", "rollout status", "rollout pause", "rollout abort",
	"device group add", "device group remove", "device group list", "device tag add", "device tag remove", "device tag list"}

// checkGlobalRemote refuses --server or --token before a command that
// cannot run against a server, which would otherwise run on the project
// directory regardless. It returns "" when args are fine.
func checkGlobalRemote(args []string) string {
	global := false
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if name == "server" || name == "token" {
			global = true
			if !hasValue {
				i++
			}
		}
	}
	if !global || i >= len(args) {
		return ""
	}
	cmd := args[i]
	if slices.Contains(remoteCommands, cmd) {
		return ""
	}
	if i+1 < len(args) && slices.Contains(remoteCommands, cmd+" "+args[i+1]) {
		return ""
	}
	return fmt.Sprintf("--server: uptrust %s does not run against a server (those that do: %s)", strings.Join(args[i:min(i+2, len(args))], " "),
		strings.Join(remoteCommands, ", "))
}

// remoteFlags are --server and --token of a command that can run against a
// running server instead of a project directory.
type remoteFlags struct {
	fs            *flag.FlagSet
	env           Env
	server, token *string
}

func addRemote(fs *flag.FlagSet, env Env) *remoteFlags {
	return &remoteFlags{fs: fs, env: env,
		server: fs.String("server", "", "run against the management API at `URL` (the server's --admin-listen) instead of --dir; $UPTRUST_SERVER, else client.json"),
		token:  fs.String("token", "", "API token for --server; $UPTRUST_TOKEN, else client.json (prefer those: a flag shows in the process list)")}
}

func clientConfigPath(env Env) string {
	if p := env.Getenv("UPTRUST_CLIENT_CONFIG"); p != "" {
		return p
	}
	if d := env.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "uptrust", "client.json")
	}
	if h := env.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "uptrust", "client.json")
	}
	return ""
}

// client returns the API client when the command runs against a server,
// nil when it runs on a project directory. The server comes from --server,
// else $UPTRUST_SERVER, else the client configuration file, but --dir or
// $UPTRUST_DIR given explicitly means the project directory; both --dir
// and --server is a usage error. The token comes from --token, else
// $UPTRUST_TOKEN, else the configuration file.
func (r *remoteFlags) client() (*apiClient, error) {
	return r.resolve(false)
}

// peer returns the API client of a command that works on the project
// directory and a server at once (push, pull): the server is required,
// found as client() finds it, and --dir does not exclude it.
func (r *remoteFlags) peer(cmd string) (*apiClient, error) {
	c, err := r.resolve(true)
	if err == nil && c == nil {
		err = usagef("%s needs the server: --server URL (the server's --admin-listen), $UPTRUST_SERVER or client.json", cmd)
	}
	return c, err
}

func (r *remoteFlags) resolve(withDir bool) (*apiClient, error) {
	dirSet, serverSet := false, false
	r.fs.Visit(func(f *flag.Flag) {
		dirSet = dirSet || f.Name == "dir" && !withDir
		serverSet = serverSet || f.Name == "server"
	})
	if dirSet && serverSet {
		return nil, usagef("--dir and --server exclude each other")
	}
	server, token := *r.server, *r.token
	if g := r.env.global; g != nil && g.server != nil {
		if server == "" {
			server = *g.server
		}
		if token == "" {
			token = *g.token
		}
	}
	if dirSet {
		if server != "" {
			return nil, usagef("--dir and --server exclude each other")
		}
		return nil, nil
	}
	if server == "" {
		server = r.env.Getenv("UPTRUST_SERVER")
	}
	if token == "" {
		token = r.env.Getenv("UPTRUST_TOKEN")
	}
	if server == "" || token == "" {
		if path := clientConfigPath(r.env); path != "" {
			b, err := os.ReadFile(path)
			switch {
			case err == nil:
				var cfg ClientConfig
				if err := strictjson.Decode(path, b, &cfg); err != nil {
					return nil, err
				}
				if server == "" && r.env.Getenv("UPTRUST_DIR") == "" {
					server = cfg.Server
				}
				if token == "" {
					token = cfg.Token
				}
			case !errors.Is(err, os.ErrNotExist) || r.env.Getenv("UPTRUST_CLIENT_CONFIG") != "":
				return nil, fmt.Errorf("client configuration: %w", err)
			}
		}
	}
	if server == "" {
		return nil, nil
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--server %q: want http://HOST:PORT or https://HOST:PORT", server)
	}
	if token == "" {
		return nil, usagef("--server needs a token: --token, $UPTRUST_TOKEN or \"token\" in %s", clientConfigPath(r.env))
	}
	return &apiClient{base: strings.TrimSuffix(u.String(), "/") + api.Prefix, token: token,
		http: &http.Client{Timeout: 60 * time.Second}}, nil
}

// apiClient calls the management API.
type apiClient struct {
	base, token string
	http        *http.Client
}

// do sends a request and decodes a 2xx JSON answer into out (when non-nil).
// An error answer becomes an error carrying the problem's detail, its
// status and request id.
func (c *apiClient) do(ctx context.Context, method, path string, q url.Values, body any, hdr map[string]string, out any) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("server: %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var p api.Problem
		if json.Unmarshal(b, &p) != nil || p.Detail == "" {
			return resp.Header, fmt.Errorf("server: %s %s: %s", method, path, resp.Status)
		}
		return resp.Header, &ServerError{Status: resp.StatusCode, Detail: p.Detail, RequestID: p.RequestID}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.Header, fmt.Errorf("server: %s %s: the answer is not what this uptrust expects: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func (c *apiClient) get(ctx context.Context, path string, q url.Values, out any) (http.Header, error) {
	return c.do(ctx, http.MethodGet, path, q, nil, nil, out)
}

// ServerError is an error answer of the management API.
type ServerError struct {
	Status    int
	Detail    string
	RequestID string
}

func (e *ServerError) Error() string {
	msg := fmt.Sprintf("server: %d %s: %s (request %s)", e.Status, http.StatusText(e.Status), e.Detail, e.RequestID)
	switch e.Status {
	case http.StatusUnauthorized:
		msg += "; check --token, $UPTRUST_TOKEN or client.json"
	case http.StatusForbidden:
		msg += "; ask an admin for a token with that role"
	}
	return msg
}

// listAll follows a list's cursors and returns every item.
func listAll[T any](ctx context.Context, c *apiClient, path string, q url.Values) ([]T, error) {
	if q == nil {
		q = url.Values{}
	}
	q.Set("limit", "1000")
	out := []T{}
	for {
		var page api.Page[T]
		if _, err := c.get(ctx, path, q, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.Next == "" {
			return out, nil
		}
		q.Set("cursor", page.Next)
	}
}

// remoteRollout reads a product's rollout and its ETag; ok is false when
// the product has no rollout.
func remoteRollout(ctx context.Context, c *apiClient, product string) (ro RolloutJSON, etag string, ok bool, err error) {
	h, err := c.get(ctx, "/rollouts/"+url.PathEscape(product), nil, &ro)
	var se *ServerError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return ro, "", false, nil
	}
	if err != nil {
		return ro, "", false, err
	}
	return ro, h.Get("ETag"), true, nil
}

func remoteStartRollout(ctx context.Context, env Env, c *apiClient, product, version string, percent int) error {
	hdr := map[string]string{}
	if _, etag, ok, err := remoteRollout(ctx, c, product); err != nil {
		return err
	} else if ok {
		hdr["If-Match"] = etag
	}
	var ro RolloutJSON
	if _, err := c.do(ctx, http.MethodPost, "/rollouts", nil, api.RolloutStart{Product: product, Version: version, Percent: &percent}, hdr, &ro); err != nil {
		return err
	}
	printRollout(env, store.Rollout{Product: ro.Product, Version: ro.Version, Percent: ro.Percent, Halted: ro.Halted})
	return nil
}

// remoteChangeRollout applies fn to the rollout as read and sends what
// changed with If-Match, so a change made by someone else in between is
// refused (412) rather than overwritten.
func remoteChangeRollout(ctx context.Context, env Env, c *apiClient, product string, fn func(*store.Rollout)) error {
	cur, etag, ok, err := remoteRollout(ctx, c, product)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("server: no rollout of %s (start one with uptrust rollout start)", product)
	}
	ro := store.Rollout{Product: cur.Product, Version: cur.Version, Percent: cur.Percent, Halted: cur.Halted}
	fn(&ro)
	var patch api.RolloutPatch
	percent, halted := ro.Percent, ro.Halted
	patch.Percent, patch.Halted = &percent, &halted
	var out RolloutJSON
	if _, err := c.do(ctx, http.MethodPatch, "/rollouts/"+url.PathEscape(product), nil, patch, map[string]string{"If-Match": etag}, &out); err != nil {
		return err
	}
	printRollout(env, store.Rollout{Product: out.Product, Version: out.Version, Percent: out.Percent, Halted: out.Halted})
	return nil
}

// localOrRemote returns what remote computes when the command runs against
// a server (remoteFlags.client finds one), else what local computes on the
// project at dir, which it opens and closes. Either way the value is the
// management API's type, so --server prints what --dir prints.
func localOrRemote[T any](ctx context.Context, env Env, rf *remoteFlags, dir string,
	remote func(c *apiClient) (T, error), local func(p *project.Project) (T, error)) (T, error) {
	var zero T
	c, err := rf.client()
	if err != nil {
		return zero, err
	}
	if c != nil {
		return remote(c)
	}
	p, err := openProject(ctx, env, dir)
	if err != nil {
		return zero, err
	}
	defer p.Close()
	return local(p)
}

// doLocalOrRemote is localOrRemote for commands that only change something.
func doLocalOrRemote(ctx context.Context, env Env, rf *remoteFlags, dir string,
	remote func(c *apiClient) error, local func(p *project.Project) error) error {
	_, err := localOrRemote(ctx, env, rf, dir,
		func(c *apiClient) (struct{}, error) { return struct{}{}, remote(c) },
		func(p *project.Project) (struct{}, error) { return struct{}{}, local(p) })
	return err
}

// apiGet reads path's JSON answer.
func apiGet[T any](ctx context.Context, c *apiClient, path string) (T, error) {
	var v T
	_, err := c.get(ctx, path, nil, &v)
	return v, err
}

// apiSend sends body (nil for none) with method to path and decodes the
// JSON answer.
func apiSend[T any](ctx context.Context, c *apiClient, method, path string, body any) (T, error) {
	var v T
	_, err := c.do(ctx, method, path, nil, body, nil, &v)
	return v, err
}

// printJSONOr prints v as JSON when asJSON is set, else with text.
func printJSONOr[T any](env Env, asJSON bool, v T, text func(Env, T) error) error {
	if asJSON {
		return writeJSON(env.Stdout, v)
	}
	return text(env, v)
}
