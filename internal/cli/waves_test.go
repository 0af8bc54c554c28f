package cli_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/api"
)

// TestRolloutWaves: the managed rollout commands on the project directory
// (--dir) and against a running server (--server) print the same: groups
// and tags, `rollout start` with the wave flags, `rollout status` with
// counts per wave, pause, resume, abort. The wave flags are refused for an
// anonymous product and --percent for a managed one, with a clear error;
// bad flags, an unknown group and an auditor's change are refused and
// start nothing.
func TestRolloutWaves(t *testing.T) {
	s := serveWithAdmin(t)
	waves := []string{"--waves", "50%,100%", "--max-failure", "5%", "--min-success", "1", "--soak", "1h"}
	start := func(args ...string) []string {
		return append([]string{"rollout", "start", "thermostat", "1.1.0"}, args...)
	}

	// Anonymous thermostat: the wave flags are refused, --percent works.
	for _, args := range [][]string{append(start(waves...), "--dir", s.dir), s.as("operator", start(waves...)...)} {
		if r := run(t, nil, args...); r.code != 1 || !strings.Contains(r.stderr, "thermostat is an anonymous product: use --percent") {
			t.Errorf("wave flags on an anonymous product: %v", r)
		}
	}
	mustRun(t, nil, s.as("operator", start("--percent", "10")...)...)
	if r := run(t, nil, append(start("--percent", "10", "--waves", "100%"), "--dir", s.dir)...); r.code != 2 || !strings.Contains(r.stderr, "one or the other") {
		t.Errorf("--percent with --waves: %v", r)
	}

	mustRun(t, nil, s.as("operator", "product", "mode", "thermostat", "managed")...)
	mustRun(t, nil, s.as("operator", "product", "inventory", "thermostat", "--fields", "version,hardware")...)
	for _, args := range [][]string{append(start("--percent", "10"), "--dir", s.dir), s.as("operator", start("--percent", "10")...)} {
		if r := run(t, nil, args...); r.code != 1 || !strings.Contains(r.stderr, "thermostat is a managed product: start a rollout in waves") {
			t.Errorf("--percent on a managed product: %v", r)
		}
	}
	token := strings.TrimSpace(mustRun(t, nil, s.as("operator", "enrollment-token", "create", "--product", "thermostat", "--uses", "3", "--auto-accept")...).stdout)
	p := openProject(t, s.dir)
	var ids []string
	for range 2 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		d, err := p.Enroll(t.Context(), "thermostat", pub, token)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	mustRun(t, nil, s.as("operator", "device", "group", "add", "lab", ids[0])...)
	mustRun(t, nil, "device", "group", "add", "field", ids[1], "--dir", s.dir)
	mustRun(t, nil, s.as("operator", "device", "tag", "add", "eu", ids[0], ids[1])...)
	mustRun(t, nil, "device", "tag", "remove", "eu", ids[1], "--dir", s.dir)

	// Refusals: nothing starts.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{append(start("--waves", "50%,40%,100%", "--max-failure", "5%", "--min-success", "1", "--soak", "1h"), "--dir", s.dir), 2, "must increase"},
		{s.as("operator", start("--waves", "100%", "--max-failure", "5", "--min-success", "1", "--soak", "1h")...), 2, "--max-failure"},
		{s.as("operator", start("--select", "colour=red", "--waves", "100%", "--max-failure", "5%", "--min-success", "1", "--soak", "1h")...), 2, "unknown key"},
		{s.as("operator", start(append(waves, "--select", "group=nowhere")...)...), 1, `unknown group "nowhere"`},
		{append(start(append(waves, "--select", "group=nowhere")...), "--dir", s.dir), 1, `unknown group "nowhere"`},
		{s.as("operator", append([]string{"rollout", "start", "thermostat", "9.9.9"}, waves...)...), 1, "9.9.9 is not published"},
		{s.as("auditor", start(waves...)...), 1, "server: 403"},
	} {
		if r := run(t, nil, c.args...); r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("uptrust %s: want exit %d and %q\n%v", strings.Join(c.args, " "), c.code, c.want, r)
		}
	}
	if r := mustRun(t, nil, "rollout", "status", "thermostat", "--dir", s.dir); !strings.Contains(r.stdout, "no rollouts in waves") {
		t.Errorf("status after refusals: %v", r)
	}

	r := mustRun(t, nil, s.as("operator", start(append(waves, "--select", "tag=eu", "--window", "Mon-Fri 02:00-04:00 Europe/Berlin", "--json")...)...)...)
	var m api.ManagedRolloutJSON
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m.Phase != "active" || m.ActiveWave != 1 || m.Select != "tag=eu" {
		t.Fatalf("start: %v %v", r, err)
	}
	for _, args := range [][]string{
		{"rollout", "status", "thermostat"}, {"rollout", "status", "thermostat", m.ID, "--json"},
		{"device", "group", "list", "thermostat"}, {"device", "tag", "list", "thermostat", "--json"},
	} {
		local := mustRun(t, nil, append(args, "--dir", s.dir)...)
		remote := mustRun(t, nil, s.as("auditor", args...)...)
		if local.stdout != remote.stdout {
			t.Errorf("uptrust %s: --server prints\n%s\n--dir prints\n%s", strings.Join(args, " "), remote.stdout, local.stdout)
		}
	}
	r = mustRun(t, nil, "rollout", "status", "thermostat", "--dir", s.dir)
	for _, want := range []string{"rollout " + m.ID + " of thermostat 1.1.0: active in wave 1 of 2 (50%)", "select tag=eu", "window Mon-Fri 02:00-04:00 Europe/Berlin",
		"WAVE", "MEMBERS", "SUCCEEDED"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	var st []api.ManagedRolloutJSON
	r = mustRun(t, nil, s.as("auditor", "rollout", "status", "thermostat", "--json")...)
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 1 || len(st[0].Waves) != 2 ||
		st[0].Waves[0].Counts.Members+st[0].Waves[1].Counts.Members != 1 {
		t.Errorf("status --json: %v (one tagged device among the waves)", r)
	}

	if r := run(t, nil, s.as("auditor", "rollout", "pause", "thermostat")...); r.code != 1 || !strings.Contains(r.stderr, "server: 403") {
		t.Errorf("auditor pause: %v", r)
	}
	r = mustRun(t, nil, "rollout", "pause", "thermostat", "--reason", "field report", "--dir", s.dir)
	if !strings.Contains(r.stdout, "paused in wave 1 of 2") || !strings.Contains(r.stdout, "field report") {
		t.Errorf("pause: %v", r)
	}
	if r := run(t, nil, s.as("operator", "rollout", "pause", "thermostat", m.ID)...); r.code != 1 || !strings.Contains(r.stderr, "cannot pause a paused rollout") {
		t.Errorf("pause twice: %v", r)
	}
	r = mustRun(t, nil, s.as("operator", "rollout", "resume", "thermostat")...)
	if !strings.Contains(r.stdout, "active in wave 1 of 2") {
		t.Errorf("resume: %v", r)
	}
	r = mustRun(t, nil, s.as("operator", "rollout", "abort", "thermostat", m.ID)...)
	if !strings.Contains(r.stdout, ": aborted") {
		t.Errorf("abort: %v", r)
	}
	if r := run(t, nil, "rollout", "resume", "thermostat", "--dir", s.dir); r.code != 1 || !strings.Contains(r.stderr, "no rollout in waves in progress") {
		t.Errorf("resume with none in progress: %v", r)
	}
	if r := run(t, nil, s.as("operator", "device", "group", "remove", "nowhere", ids[0])...); r.code != 1 || !strings.Contains(r.stderr, "server: 404") {
		t.Errorf("group remove of an absent group: %v", r)
	}
}
