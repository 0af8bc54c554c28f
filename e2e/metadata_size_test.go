package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/report"
)

// unsignedTargets is n bytes of JSON shaped like a targets role that lists
// thousands of targets and carries no signature: what a hostile mirror
// serves to make a device spend its memory parsing before it checks a
// signature.
func unsignedTargets(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"signatures":[],"signed":{"_type":"targets","spec_version":"1.0.31","version":99,"expires":"2099-01-01T00:00:00Z","targets":{`)
	for i := 0; b.Len() < n-100; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%s/9.%d.0":{"length":1,"hashes":{"sha256":"00"},"custom":{"x":[0,0,0,0]}}`, product, i)
	}
	b.WriteString(`}}}`)
	for b.Len() < n {
		b.WriteByte(' ')
	}
	return []byte(b.String())
}

// TestOversizedUnsignedMetadata: a mirror serves 4.9 MB of unsigned JSON
// (below go-tuf's own 5,000,000-byte default) in place of a targets role.
// The snapshot lists the role's length and hash, so the device stops
// reading at the signed length and refuses the document without parsing
// it (metadata-too-long), keeps running its verified image, and updates
// once the mirror serves the real document again.
func TestOversizedUnsignedMetadata(t *testing.T) {
	junk := unsignedTargets(4_900_000)
	metadataFile := func(repoName, suffix string) func(string) bool {
		return func(p string) bool {
			return strings.HasPrefix(p, "/repo/"+repoName+"/metadata/") && strings.HasSuffix(p, suffix)
		}
	}
	for _, tc := range []struct {
		name    string
		match   func(string) bool
		chunked bool // no Content-Length: the device must stop reading
	}{
		{"release targets", metadataFile("release", ".targets.json"), false},
		{"fleet targets", metadataFile("fleet", ".targets.json"), true},
		{"product role", metadataFile("release", ".products/"+product+".json"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := offered(t, worldOptions{})
			d := w.device("d", 0)
			var requests int
			w.proxy.on(tc.match, func(rw http.ResponseWriter, _ *http.Request) {
				requests++
				if tc.chunked {
					rw.Write(junk[:1024])
					rw.(http.Flusher).Flush()
					rw.Write(junk[1024:])
					return
				}
				rw.Header().Set("Content-Length", strconv.Itoa(len(junk)))
				rw.Write(junk)
			})
			w.cycle(d)
			if requests == 0 {
				t.Fatal("the device never asked for the document")
			}
			st := w.assertRefused(d, "1.0.0", report.ClassMetadataTooLong, report.OutcomeRejected)
			if want := "(the length its signed entry lists): refused before parsing"; !strings.Contains(st.LastCheck.Reason, want) {
				t.Errorf("reason %q does not say %q", st.LastCheck.Reason, want)
			}
			w.proxy.clear()
			w.cycle(d)
			w.assertRunning(d, "1.1.0")
		})
	}
}
