package compliance

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// agentSource returns the lower-cased non-test Go source of internal/agent
// and its sub-packages, per file name relative to internal/agent.
func agentSource(t *testing.T) map[string]string {
	t.Helper()
	root := filepath.Join("..", "agent")
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		out[rel] = strings.ToLower(string(b))
		return nil
	})
	if err != nil {
		t.Fatalf("reading the agent's source: %v", err)
	}
	if len(out) == 0 {
		t.Fatalf("no agent source under %s", root)
	}
	return out
}

// TestAgentCapabilitiesMatchSource keeps agentCapabilities honest: each
// capability is claimed exactly when the agent's source shows it. When this
// fails after a change to internal/agent, update agentCapabilities (and the
// markers here if the agent names things differently): the compliance
// verdicts follow the table.
func TestAgentCapabilitiesMatchSource(t *testing.T) {
	src := agentSource(t)
	// has reports whether any marker occurs in the named file ("" for any
	// file).
	has := func(file string, markers ...string) bool {
		for name, s := range src {
			if file != "" && name != file {
				continue
			}
			for _, m := range markers {
				if strings.Contains(s, m) {
					return true
				}
			}
		}
		return false
	}
	checksAtStart := false
	if s, ok := src["agent.go"]; ok {
		if i := strings.Index(s, "func (a *agent) run("); i >= 0 {
			body := s[i:]
			c, j := strings.Index(body, "a.check(ctx)"), strings.Index(body, "jitter(")
			checksAtStart = c >= 0 && j >= 0 && c < j
		}
	}
	a := agentCapabilities
	for _, c := range []struct {
		name          string
		claimed, seen bool
	}{
		{"ChecksAtStart (Run checks before its first wait)", a.ChecksAtStart, checksAtStart},
		{"TAP4 (go-tuf multirepo)", a.TAP4, has("", "multirepo.")},
		{"ABRollback (PhaseReverting)", a.ABRollback, has("", "phasereverting")},
		{"AntiRollback (ClassRollbackSecurity)", a.AntiRollback, has("", "classrollbacksecurity")},
		{"ShowsOffered (status.go shows the offer)", a.ShowsOffered, has("status.go", "offered")},
		{"ShowsSupportEnd (status.go SupportUntil)", a.ShowsSupportEnd, has("status.go", "supportuntil")},
		{"ShowsReleaseInfo (status.go shows advisories or notes)", a.ShowsReleaseInfo, has("status.go", ".advisories", ".notes")},
		{"Notifies (notify hook events)", a.Notifies, has("", "eventneedsconsent")},
		{"WarnsBeforeReboot (a notify event before the reboot)", a.WarnsBeforeReboot, has("notify.go", "eventrebooting", "eventinstalling", "eventinterrupt")},
	} {
		if c.claimed != c.seen {
			t.Errorf("agentCapabilities.%s = %v, but the agent's source says %v: update agentCapabilities in gather.go", c.name, c.claimed, c.seen)
		}
	}
}

// TestAgentDecideUsesJudge makes sure the probes of probeAgent mean
// something: the agent's decision path applies agent.Judge.
func TestAgentDecideUsesJudge(t *testing.T) {
	for name, s := range agentSource(t) {
		if name != "policy.go" && strings.Contains(s, "judge(") {
			return
		}
	}
	t.Error("no agent source outside policy.go calls Judge: the owner's controls probed through agent.Judge are not applied to offered releases")
}

func TestProbeAgent(t *testing.T) {
	a, err := probeAgent(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if a.PollInterval <= 0 {
		t.Errorf("default poll interval %v", a.PollInterval)
	}
	for _, c := range []struct {
		name   string
		ok     bool
		reason string
	}{
		{"ConsentForAdverse", a.ConsentForAdverse, a.ConsentReason},
		{"AppliesPolicy", a.AppliesPolicy, a.PolicyReason},
		{"OwnerOptOut", a.OwnerOptOut, a.OptOutReason},
		{"OwnerPostpone", a.OwnerPostpone, a.PostponeReason},
	} {
		if !c.ok || c.reason == "" {
			t.Errorf("%s: %v, reason %q", c.name, c.ok, c.reason)
		}
	}
	if !a.PostponeLimited {
		t.Error("a postponement beyond the maker's limit is not refused")
	}
	static := a
	static.PollInterval = 0
	static.AppliesPolicy, static.PolicyReason, static.ConsentForAdverse, static.ConsentReason = false, "", false, ""
	static.OwnerOptOut, static.OptOutReason, static.OwnerPostpone, static.PostponeReason, static.PostponeLimited = false, "", false, "", false
	if static != agentCapabilities {
		t.Errorf("probeAgent changed the static capabilities: %+v, want %+v", static, agentCapabilities)
	}
}
