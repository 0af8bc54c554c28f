// Package replicatest runs `uptrust serve` replicas as real processes on one
// project — one PostgreSQL database, one blobs directory — for the failover
// tests and bench/failover: it makes the project, starts replicas with
// JSON logs, follows their records (address, lease holder id, re-signs),
// kills them, and reads what they serve and what the database holds.
//
// It drives a built uptrust binary (internal/testbin in tests, go build in
// the benchmark); it never calls the serving code in-process, so a
// SIGKILL is a real process death.
package replicatest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uptrust/uptrust/internal/deviceapi"
)

// Product and Version are the product and release NewProject publishes,
// with a rollout to all devices.
const (
	Product = "thermostat"
	Version = "1.0.0"
)

// NewProject makes a development project in dir whose store is the
// PostgreSQL database dsn (blobs in dir/blobs, shared by every replica
// started on dir), with the timestamp lifetime set to tsLife. It then adds
// Product, its release Version and a 100 % rollout, so that the timestamps
// of both repositories are signed with tsLife (init signs them with the
// default lifetime). env is the environment of the commands (nil: this
// process's without UPTRUST_ variables).
func NewProject(ctx context.Context, bin, dir, dsn string, tsLife time.Duration, env []string) error {
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		if env == nil {
			cmd.Env = cleanEnv()
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("replicatest: uptrust %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("init", "--dev", "--dir", dir, "--database", dsn); err != nil {
		return err
	}
	if err := setTimestampLifetime(filepath.Join(dir, "uptrust.json"), tsLife); err != nil {
		return err
	}
	payload := filepath.Join(dir, "fw.img")
	if err := os.WriteFile(payload, []byte("firmware for replicas"), 0o600); err != nil {
		return fmt.Errorf("replicatest: %w", err)
	}
	for _, args := range [][]string{
		{"product", "add", Product, "--hardware", "rev-a", "--support-until", "2031-12-31"},
		{"release", "add", Product, Version, payload, "--kind", "fix", "--security-version", "1"},
		{"rollout", "start", Product, Version, "--percent", "100"},
	} {
		if err := run(append(args, "--dir", dir)...); err != nil {
			return err
		}
	}
	return nil
}

// setTimestampLifetime rewrites lifetimes.timestamp in uptrust.json,
// keeping every other field as it is.
func setTimestampLifetime(path string, d time.Duration) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("replicatest: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("replicatest: %s: %w", path, err)
	}
	life, ok := cfg["lifetimes"].(map[string]any)
	if !ok {
		return fmt.Errorf("replicatest: %s has no lifetimes", path)
	}
	life["timestamp"] = d.String()
	if b, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		return fmt.Errorf("replicatest: %w", err)
	}
	return os.WriteFile(path, b, 0o600)
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "UPTRUST_") {
			out = append(out, kv)
		}
	}
	return out
}

// Replica is a running `uptrust serve` process. Its log records are read
// as they come; Resigns and ResignedAfter report the "online metadata
// re-signed" records, which only the lease holder writes.
type Replica struct {
	Name string
	// Addr is the public listener (devices), AdminAddr the management API
	// and metrics; LeaseHolder the id the process holds leases under.
	Addr, AdminAddr, LeaseHolder string

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
	err    error         // Wait's error, set before exited closes

	mu      sync.Mutex
	resigns []time.Time // when each re-sign record was read
	notify  chan struct{}
	log     strings.Builder
}

// Start starts `uptrust serve --dir dir` on loopback port 0 for the
// public listener and the admin listener, with JSON logs and a high
// per-client report rate (every simulated device shares 127.0.0.1), plus
// extra flags, and returns once the replica has loaded its content. It
// fails when the process exits first or ctx ends.
func Start(ctx context.Context, bin, dir, name string, extra ...string) (*Replica, error) {
	args := append([]string{"serve", "--dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--log-format", "json", "--report-client-rate", "10000", "--report-client-burst", "10000"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("replicatest: %w", err)
	}
	r := &Replica{Name: name, cmd: cmd, exited: make(chan struct{}), notify: make(chan struct{}, 1)}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("replicatest: starting %s: %w", name, err)
	}
	loaded := make(chan struct{})
	go func() {
		r.follow(stderr, loaded)
		r.err = cmd.Wait()
		close(r.exited)
	}()
	select {
	case <-loaded:
		return r, nil
	case <-r.exited:
		return nil, fmt.Errorf("replicatest: %s exited before loading its content (%v):\n%s", name, r.err, r.Log())
	case <-ctx.Done():
		r.Kill()
		return nil, fmt.Errorf("replicatest: %s did not load its content: %w\n%s", name, ctx.Err(), r.Log())
	}
}

// follow reads the JSON log records of the process until its stderr
// closes, closing loaded at the first "content loaded".
func (r *Replica) follow(stderr io.Reader, loaded chan struct{}) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	isLoaded := false
	for sc.Scan() {
		line := sc.Bytes()
		var rec struct {
			Msg         string `json:"msg"`
			Addr        string `json:"addr"`
			AdminAddr   string `json:"admin_addr"`
			LeaseHolder string `json:"lease_holder"`
		}
		_ = json.Unmarshal(line, &rec) // a line that is no record is only kept in the log
		r.mu.Lock()
		r.log.Write(line)
		r.log.WriteByte('\n')
		// The address fields are written only before loaded closes; the
		// server's own later "serving" record has no addr.
		switch {
		case rec.Msg == "serving" && rec.Addr != "" && !isLoaded:
			r.Addr, r.LeaseHolder = rec.Addr, rec.LeaseHolder
		case rec.Msg == "serving the management API and metrics" && !isLoaded:
			r.AdminAddr = rec.AdminAddr
		case rec.Msg == "online metadata re-signed":
			r.resigns = append(r.resigns, time.Now())
			select {
			case r.notify <- struct{}{}:
			default:
			}
		}
		r.mu.Unlock()
		if rec.Msg == "content loaded" && !isLoaded {
			isLoaded = true
			close(loaded)
		}
	}
}

// Log is what the process has logged so far.
func (r *Replica) Log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// Resigns is how many re-sign records the process has logged.
func (r *Replica) Resigns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.resigns)
}

// WaitResign waits until the process has logged more than n re-sign
// records and returns their number; it fails when the process exits or
// ctx ends first.
func (r *Replica) WaitResign(ctx context.Context, n int) (int, error) {
	for {
		if got := r.Resigns(); got > n {
			return got, nil
		}
		select {
		case <-r.notify:
		case <-r.exited:
			if got := r.Resigns(); got > n {
				return got, nil
			}
			return 0, fmt.Errorf("replicatest: %s exited (%v)", r.Name, r.err)
		case <-ctx.Done():
			return 0, fmt.Errorf("replicatest: %s: waiting for a re-sign: %w", r.Name, ctx.Err())
		}
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (r *Replica) Kill() error {
	select {
	case <-r.exited:
		return nil
	default:
	}
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("replicatest: killing %s: %w", r.Name, err)
	}
	<-r.exited
	return nil
}

// Stop sends SIGTERM (a clean shutdown that gives the lease up) and waits
// for the process to exit; it returns the exit error.
func (r *Replica) Stop() error {
	select {
	case <-r.exited:
		return r.err
	default:
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("replicatest: stopping %s: %w", r.Name, err)
	}
	<-r.exited
	return r.err
}

// Timestamp is the signed part of a timestamp.json that matters here.
type Timestamp struct {
	Version int64
	Expires time.Time
}

// After says whether t is newer than o: a higher version and a later
// expiry.
func (t Timestamp) After(o Timestamp) bool {
	return t.Version > o.Version && t.Expires.After(o.Expires)
}

// FleetTimestamp fetches the fleet repository's timestamp.json from the
// public listener at addr, as a device's update check does.
func FleetTimestamp(ctx context.Context, c *http.Client, addr string) (Timestamp, error) {
	u := "http://" + addr + deviceapi.FleetBase + "/metadata/timestamp.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Timestamp{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return Timestamp{}, fmt.Errorf("replicatest: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Timestamp{}, fmt.Errorf("replicatest: GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Timestamp{}, fmt.Errorf("replicatest: GET %s: %s", u, resp.Status)
	}
	var md struct {
		Signed struct {
			Type    string    `json:"_type"`
			Version int64     `json:"version"`
			Expires time.Time `json:"expires"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &md); err != nil || md.Signed.Type != "timestamp" {
		return Timestamp{}, fmt.Errorf("replicatest: GET %s: not a timestamp (%v): %.200s", u, err, b)
	}
	return Timestamp{md.Signed.Version, md.Signed.Expires}, nil
}

// ResignLeaseHolder reads the holder of the "resign" lease from the
// database dsn ("" when nobody holds it).
func ResignLeaseHolder(ctx context.Context, dsn string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("replicatest: %w", err)
	}
	defer conn.Close(ctx)
	var h string
	err = conn.QueryRow(ctx, `SELECT holder FROM leases WHERE name = 'resign'`).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("replicatest: reading the resign lease: %w", err)
	}
	return h, nil
}

// LatestFleetTimestampVersion reads the highest version of the fleet
// repository's timestamp stored in the database dsn.
func LatestFleetTimestampVersion(ctx context.Context, dsn string) (int64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("replicatest: %w", err)
	}
	defer conn.Close(ctx)
	var v int64
	err = conn.QueryRow(ctx, `SELECT max(version) FROM metadata WHERE repo = $1 AND role = 'timestamp'`, deviceapi.RepoFleet).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("replicatest: reading the fleet timestamp version: %w", err)
	}
	return v, nil
}

// ResignTimes are when the re-sign records were read, oldest first.
func (r *Replica) ResignTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.resigns...)
}
