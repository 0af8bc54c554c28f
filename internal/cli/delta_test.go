package cli_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/release"
)

func TestReleaseAddDeltaFrom(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "proj")
	mustRun(t, nil, "init", "--dir", dir, "--dev")
	mustRun(t, nil, "product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31", "--dir", dir)
	v1 := writeFile(t, tmp, "v1.img", strings.Repeat("image one ", 5000))
	v2 := writeFile(t, tmp, "v2.img", strings.Repeat("image one ", 4000)+strings.Repeat("image two ", 1000))
	v3 := writeFile(t, tmp, "v3.img", strings.Repeat("image one ", 3000)+strings.Repeat("image two ", 2000))
	mustRun(t, nil, "release", "add", "thermostat", "1.1.0", v1, "--kind", "security", "--security-version", "1", "--dir", dir)
	mustRun(t, nil, "release", "add", "thermostat", "1.2.0", v2, "--kind", "security", "--security-version", "1", "--compress", "zstd", "--dir", dir)
	r := mustRun(t, nil, "release", "add", "thermostat", "1.3.0", v3, "--kind", "security", "--security-version", "1",
		"--delta-from", "1.1.0,1.2.0", "--dir", dir)
	for _, want := range []string{"delta from 1.1.0: thermostat/1.3.0.from-1.1.0.delta", "delta from 1.2.0: thermostat/1.3.0.from-1.2.0.delta"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("release add output lacks %q:\n%s", want, r.stdout)
		}
	}
	p := openProject(t, dir)
	defer p.Close()
	rel, err := p.Store.Release(t.Context(), "thermostat", "1.3.0")
	if err != nil {
		t.Fatal(err)
	}
	var m release.Manifest
	if err := json.Unmarshal(rel.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Deltas) != 2 || m.Deltas[0].SourceLength != 50000 || m.Deltas[1].SourceLength != 50000 {
		t.Errorf("manifest deltas %+v", m.Deltas)
	}
}
