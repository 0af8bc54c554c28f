package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// uniqueETags gives every payload answer an ETag of its own, as a server
// or CDN that wants to recognise a device when it comes back would, and
// cuts the answers plan cuts.
func uniqueETags(cut func(i int) int64) func(i int) plan {
	return func(i int) plan { return plan{cut: cut(i), etag: fmt.Sprintf(`"device-%d"`, i)} }
}

// echoed returns the requests that carried a value the server chose: any
// header holding one of the ETags the tap sent, or an If-Range at all.
func echoed(reqs []served) []string {
	var out []string
	for i, r := range reqs {
		for k, vs := range r.header {
			for _, v := range vs {
				if strings.Contains(v, "device-") || k == "If-Range" || k == "If-Match" || k == "If-None-Match" || k == "Cookie" {
					out = append(out, fmt.Sprintf("request %d %s: %s", i, k, v))
				}
			}
		}
	}
	return out
}

// TestResumeSendsNothingTheServerChose: the server gives each payload
// answer a unique ETag. A download interrupted in one check and finished
// in the next never sends one back (If-Range used to carry it, across
// checks too, from state.json): the server cannot recognise the device by
// it from another address. state.json keeps no ETag (issue 12, item 7).
func TestResumeSendsNothingTheServerChose(t *testing.T) {
	w := resumeWorld(t)
	d := w.device("d", 0)
	const n = 8 << 10
	tp := w.tapPayload("1.1.0", uniqueETags(func(int) int64 { return n }))
	w.cycle(d)
	if p := pending(t, d); p.Progress == nil || p.Progress.Offset == 0 {
		t.Fatalf("no progress saved by the interrupted check: %+v", p)
	}
	first := len(tp.requests())
	w.proxy.clear()
	tp2 := w.tapPayload("1.1.0", uniqueETags(func(int) int64 { return -1 }))
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	reqs := append(tp.requests(), tp2.requests()...)
	if len(reqs) != first+1 || reqs[first].rangeHdr == "" || reqs[first].status != 206 {
		t.Fatalf("requests %+v, want the second check to resume with one range request", reqs)
	}
	if e := echoed(reqs); len(e) > 0 {
		t.Fatalf("the device sent back values the server chose: %q", e)
	}
	// Nothing on the device keeps one either (state.json, the checkpoint
	// journal, the metadata cache).
	err := filepath.WalkDir(d.Config.DataDir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && (bytes.Contains(b, []byte("device-")) || bytes.Contains(b, []byte(`"etag"`))) {
			err = fmt.Errorf("%s keeps an ETag", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestResumeBytesChangedUnderSameName: the server sends the rest of other
// bytes under the payload's content-addressed name, within a check or at
// the next one (and, here, a different ETag each time, which the agent
// does not look at). The payload's hash check catches it, the download
// starts over from byte 0 and the device boots the signed image; a server
// that only has the other bytes gets the release refused, the old image
// kept. (TestResumeETagChanged, which relied on the ETag to notice,
// became this test.)
func TestResumeBytesChangedUnderSameName(t *testing.T) {
	const cut = 5<<20 + 7
	t.Run("within a check", func(t *testing.T) {
		w := resumeWorld(t)
		d := w.device("d", 0)
		tp := w.tapPayload("1.1.0", func(i int) plan {
			p := plan{cut: -1, etag: fmt.Sprintf(`"device-%d"`, i)}
			switch i {
			case 0:
				p.cut = cut
			case 1:
				p.changed = true
			}
			return p
		})
		w.cycle(d)
		w.assertRunning(d, "1.1.0")
		reqs := wantRequests(t, tp, 3)
		if reqs[1].rangeHdr != fmt.Sprintf("bytes=%d-", cut) || reqs[2].rangeHdr != "" || reqs[2].bytes != bigSize {
			t.Fatalf("requests %+v, want the resume, then the whole payload from byte 0", reqs)
		}
		if c := download(t, d, "1.1.0"); c.Restarts != 1 || !c.Complete {
			t.Fatalf("counter %+v, want one restart", c)
		}
		if e := echoed(reqs); len(e) > 0 {
			t.Fatalf("the device sent back values the server chose: %q", e)
		}
	})
	t.Run("at the next check", func(t *testing.T) {
		w := resumeWorld(t)
		d := w.device("d", 0)
		tp := w.tapPayload("1.1.0", func(int) plan { return plan{cut: 8 << 10} })
		w.cycle(d)
		saved := pending(t, d).Progress.Offset
		if saved == 0 || len(tp.requests()) == 0 {
			t.Fatal("no progress saved by the interrupted check")
		}
		w.proxy.clear()
		tp = w.tapPayload("1.1.0", func(i int) plan { return plan{cut: -1, changed: i == 0} })
		w.cycle(d)
		w.assertRunning(d, "1.1.0")
		reqs := wantRequests(t, tp, 2)
		if reqs[0].rangeHdr != fmt.Sprintf("bytes=%d-", saved) || reqs[1].rangeHdr != "" || reqs[1].bytes != bigSize {
			t.Fatalf("requests %+v, want the resume from %d, then the whole payload from byte 0", reqs, saved)
		}
	})
	t.Run("changed for good", func(t *testing.T) {
		w := resumeWorld(t)
		d := w.device("d", 0)
		tp := w.tapPayload("1.1.0", func(i int) plan {
			if i == 0 {
				return plan{cut: cut}
			}
			return plan{cut: -1, changed: true}
		})
		chk := w.cycle(d)
		w.assertRunning(d, "1.0.0")
		if chk.ErrorClass == "" {
			t.Fatalf("check %+v, want the release refused", chk)
		}
		if n := len(tp.requests()); n != 3 {
			t.Fatalf("%d requests, want the first, the resume and one download from byte 0", n)
		}
	})
}
