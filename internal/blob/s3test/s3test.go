// Package s3test starts a real S3-compatible server for tests: SeaweedFS's
// weed, built by scripts/build-seaweedfs.sh at a pinned version, with an
// S3 gateway on loopback, free ports, a temporary directory and one
// identity. Without the binary a test is skipped with the reason, or fails
// when UPTRUST_REQUIRE_TOOLS is set.
package s3test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Version is the SeaweedFS module version scripts/build-seaweedfs.sh builds.
const Version = "v0.0.0-20261109003541-7506e5f91cd6"

// RequireToolsEnv turns a missing weed binary from a skip into a failure.
const RequireToolsEnv = "UPTRUST_REQUIRE_TOOLS"

// Credentials of the one identity the server knows.
const (
	AccessKey = "uptrust-test"
	SecretKey = "uptrust-test-secret-key"
	Region    = "us-east-1"
)

// Binary returns the weed binary: $UPTRUST_WEED, else the build script's
// cache. It skips t (or fails it under UPTRUST_REQUIRE_TOOLS) when absent.
func Binary(t testing.TB) string {
	t.Helper()
	p := BinaryPath()
	checkBinary(t, p)
	return p
}

// BinaryPath is where Binary looks: $UPTRUST_WEED, else
// ${UPTRUST_CACHE:-$HOME/.cache/uptrust}/seaweedfs/VERSION/weed.
func BinaryPath() string {
	p := os.Getenv("UPTRUST_WEED")
	if p == "" {
		cache := os.Getenv("UPTRUST_CACHE")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "uptrust")
		}
		p = filepath.Join(cache, "seaweedfs", Version, "weed")
	}
	return p
}

func checkBinary(t testing.TB, p string) {
	if _, err := os.Stat(p); err != nil {
		if os.Getenv(RequireToolsEnv) != "" {
			t.Fatalf("SeaweedFS weed not found (%v) and %s is set: run scripts/build-seaweedfs.sh", err, RequireToolsEnv)
		}
		t.Skipf("SKIP: SeaweedFS weed not found (%v): run scripts/build-seaweedfs.sh or set UPTRUST_WEED; set %s=1 to make this a failure", err, RequireToolsEnv)
	}
}

// Server is a running SeaweedFS with its S3 gateway.
type Server struct {
	// Endpoint is the S3 gateway, http://127.0.0.1:PORT.
	Endpoint string
	// Bucket exists, empty, when Start returns.
	Bucket string

	bin   string
	dir   string
	args  []string
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	logf  *os.File
	s3cfg string
}

// Start runs weed server with an S3 gateway on free loopback ports and
// creates the bucket "uptrust". The server stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Launch(Binary(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Launch starts weed from bin with its data under dir (a fresh
// subdirectory per attempt) and returns once the bucket takes writes.
// The caller stops it.
func Launch(bin, dir string) (*Server, error) {
	var lastErr error
	for attempt := range 3 {
		s := &Server{bin: bin, dir: filepath.Join(dir, fmt.Sprint("weed-", attempt)), Bucket: "uptrust"}
		if err := s.configure(); err != nil {
			return nil, err
		}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
		s.Stop()
	}
	return nil, fmt.Errorf("s3test: SeaweedFS did not start: %w", lastErr)
}

// URL is the --blobs value for the server's bucket.
func (s *Server) URL() string {
	return "s3://" + s.Bucket + "?endpoint=" + s.Endpoint + "&region=" + Region
}

// Env is the environment that gives the credentials to uptrust.
func Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey}
}

// Getenv returns the credentials like os.Getenv would with Env set.
func Getenv(k string) string {
	switch k {
	case "AWS_ACCESS_KEY_ID":
		return AccessKey
	case "AWS_SECRET_ACCESS_KEY":
		return SecretKey
	}
	return ""
}

// Client returns a client for direct access to the bucket.
func (s *Server) Client() *minio.Client {
	c, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), Region: Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		panic("s3test: " + err.Error()) // the endpoint is always well-formed
	}
	return c
}

func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (s *Server) configure() error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	cfg := map[string]any{"identities": []any{map[string]any{
		"name":        "uptrust",
		"credentials": []any{map[string]string{"accessKey": AccessKey, "secretKey": SecretKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	b, _ := json.Marshal(cfg)
	s.s3cfg = filepath.Join(s.dir, "s3.json")
	if err := os.WriteFile(s.s3cfg, b, 0o600); err != nil {
		return err
	}
	p, err := freePorts(8)
	if err != nil {
		return err
	}
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", p[0])
	s.args = []string{"server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
		"-s3", "-s3.config=" + s.s3cfg,
		fmt.Sprintf("-s3.port=%d", p[0]),
		fmt.Sprintf("-master.port=%d", p[1]), fmt.Sprintf("-master.port.grpc=%d", p[2]),
		fmt.Sprintf("-volume.port=%d", p[3]), fmt.Sprintf("-volume.port.grpc=%d", p[4]),
		fmt.Sprintf("-filer.port=%d", p[5]), fmt.Sprintf("-filer.port.grpc=%d", p[6]),
		fmt.Sprintf("-s3.port.grpc=%d", p[7]),
		// No fixed ports, no sockets outside the directory, nothing sent
		// out of the machine (the master's telemetry is on by default).
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-metricsPort=0", "-master.telemetry=false",
		"-filer.localSocket=" + filepath.Join(s.dir, "filer.sock"), "-s3.localSocket=" + filepath.Join(s.dir, "s3.sock"),
		"-master.volumeSizeLimitMB=1024", "-volume.max=32",
	}
	return nil
}

// start runs weed and waits until the bucket exists and takes a write.
func (s *Server) start() error {
	f, err := os.OpenFile(filepath.Join(s.dir, "weed.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.logf = cmd, done, f
	s.mu.Unlock()
	if err := s.waitReady(done); err != nil {
		log, _ := os.ReadFile(f.Name())
		if len(log) > 4000 {
			log = log[len(log)-4000:]
		}
		return fmt.Errorf("%w\nweed log (tail):\n%s", err, log)
	}
	return nil
}

// waitReady polls until the gateway creates the bucket and a probe object
// can be written and removed (the volume server has joined the master).
func (s *Server) waitReady(done chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := s.Client()
	var last error
	for {
		select {
		case <-done:
			return errors.New("weed exited")
		case <-ctx.Done():
			return fmt.Errorf("not ready after 120s: %v", last)
		case <-time.After(250 * time.Millisecond):
		}
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		last = s.probe(rctx, c)
		rcancel()
		if last == nil {
			return nil
		}
	}
}

// probe creates the bucket and writes an object into a bucket of its own
// (so that the tests' bucket stays empty).
func (s *Server) probe(ctx context.Context, c *minio.Client) error {
	for _, b := range []string{s.Bucket, probeBucket} {
		ok, err := c.BucketExists(ctx, b)
		if err != nil {
			return err
		}
		if !ok {
			if err := c.MakeBucket(ctx, b, minio.MakeBucketOptions{Region: Region}); err != nil {
				return err
			}
		}
	}
	_, err := c.PutObject(ctx, probeBucket, "probe", strings.NewReader("probe"), 5, minio.PutObjectOptions{})
	return err
}

const probeBucket = "uptrust-probe"

// Stop ends the server (SIGTERM, then SIGKILL after 10 s); its data stays
// for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done, f := s.cmd, s.done, s.logf
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	f.Close()
}

// Restart starts the stopped server again on the same ports and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("s3test: restarting SeaweedFS: %v", err)
	}
}
