// Package pgtest starts a real PostgreSQL server for tests: initdb into a
// temporary directory, pg_ctl start listening only on a unix socket in that
// directory (no TCP port), one new database per test, pg_ctl stop when the
// test binary ends.
//
// A test package that uses it calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// and URL(t) in each test that wants a database.
//
// Requirements: the PostgreSQL server binaries (Debian: apt-get install
// postgresql; initdb and pg_ctl are looked up on PATH, then in
// /usr/lib/postgresql/*/bin). PostgreSQL refuses to run as root; when the
// tests run as root (as in CI) the server runs as the unprivileged user
// "nobody" (setuid in the child process, no sudo needed) and owns its
// directory. Missing binaries skip the test with the reason, or fail it when
// UPTRUST_REQUIRE_TOOLS is set.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// RequireToolsEnv turns missing PostgreSQL binaries from a skip into a
// failure (the same variable as the other tool-backed tests).
const RequireToolsEnv = "UPTRUST_REQUIRE_TOOLS"

// User is the database superuser the server is created with; it
// authenticates by trust over the private socket.
const User = "uptrust"

// runAs is the unprivileged user the server runs as when the tests are
// root.
const runAs = "nobody"

var (
	mu      sync.Mutex
	srv     *Server
	srvErr  error
	started bool
	dbSeq   int
)

// Main runs the tests, then stops the server if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if srv != nil {
		if err := srv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	return code
}

// URL returns the connection URL of a new, empty database on the package's
// server, starting the server on first use. It skips t when the PostgreSQL
// binaries are missing (fails when RequireToolsEnv is set), and fails t
// when the server does not start.
func URL(t testing.TB) string {
	t.Helper()
	s := shared(t)
	mu.Lock()
	dbSeq++
	name := "t" + strconv.Itoa(dbSeq)
	mu.Unlock()
	if err := s.CreateDatabase(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return s.URL(name)
}

// shared returns the package's server, starting it once.
func shared(t testing.TB) *Server {
	t.Helper()
	bin, err := Binaries()
	if err != nil {
		if os.Getenv(RequireToolsEnv) != "" {
			t.Fatalf("%v, and %s is set: install it with apt-get install postgresql", err, RequireToolsEnv)
		}
		t.Skipf("SKIP: %v: install it with apt-get install postgresql; set %s=1 to make this a failure", err, RequireToolsEnv)
	}
	mu.Lock()
	defer mu.Unlock()
	if !started {
		started = true
		srv, srvErr = Start(context.Background(), bin)
	}
	if srvErr != nil {
		t.Fatalf("pgtest: %v", srvErr)
	}
	return srv
}

// Binaries returns the directory holding initdb and pg_ctl.
func Binaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first.
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries initdb and pg_ctl not found on PATH nor in /usr/lib/postgresql/*/bin")
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Server is a running PostgreSQL server in a temporary directory.
type Server struct {
	dir  string // removed by Stop
	bin  string
	cred *syscall.Credential
	opts string // server options pg_ctl start passes on
}

// Start initialises a cluster in a new temporary directory and starts it,
// listening on a unix socket in that directory only. bin holds initdb and
// pg_ctl. The data is not synced to disk: it is for tests.
func Start(ctx context.Context, bin string) (*Server, error) {
	dir, err := os.MkdirTemp("", "uptrust-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		cred, err := credential(runAs)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		s.cred = cred
	}
	data := filepath.Join(dir, "data")
	if err := s.run(ctx, "initdb", "-D", data, "-U", User, "--auth=trust", "--no-sync",
		"--encoding=UTF8", "--locale=C"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.opts = fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories='%s' -c fsync=off -c synchronous_commit=off -c full_page_writes=off", dir)
	if err := s.Resume(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Resume starts the server's cluster: at the end of Start, and again after
// Pause.
func (s *Server) Resume(ctx context.Context) error {
	if err := s.run(ctx, "pg_ctl", "start", "-D", filepath.Join(s.dir, "data"), "-w", "-t", "60", "-l", filepath.Join(s.dir, "server.log"), "-o", s.opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		return fmt.Errorf("%w\nserver log:\n%s", err, log)
	}
	return nil
}

// Pause stops the server at once, as a crash or an outage would, keeping
// its data for Resume.
func (s *Server) Pause() error {
	return s.run(context.Background(), "pg_ctl", "stop", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w")
}

// credential returns the uid and gid of the named user.
func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pgtest: PostgreSQL refuses to run as root and there is no user %q to run it as: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtest: user %s: %w", name, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// run runs one of the server's programs, as the unprivileged user when
// there is one.
func (s *Server) run(ctx context.Context, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, prog), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + s.bin + ":/usr/bin:/bin", "LC_ALL=C", "HOME=" + s.dir}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: %s %v: %v\n%s", prog, args, err, out)
	}
	return nil
}

// URL returns the connection URL of database name on the server.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://%s@/%s?host=%s&sslmode=disable", User, name, s.dir)
}

// Dir is the directory holding the server's socket, data and log.
func (s *Server) Dir() string { return s.dir }

// CreateDatabase creates an empty database.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return nil
}

// Stop stops the server at once and removes its directory.
func (s *Server) Stop() error {
	err := s.run(context.Background(), "pg_ctl", "stop", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w")
	return errors.Join(err, os.RemoveAll(s.dir))
}

// Checkpoint writes every committed transaction to disk. The test server
// runs with synchronous_commit off, so a Pause (an immediate stop) may lose
// the last commits; a test that needs them after Resume checkpoints first.
func (s *Server) Checkpoint(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("pgtest: CHECKPOINT: %w", err)
	}
	return nil
}
