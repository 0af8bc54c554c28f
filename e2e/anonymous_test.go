package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
)

// request is what the network sees of one device request, minus what TCP
// and the server address necessarily carry.
type request struct {
	Method, Path string
	Header       string
	Body         string
}

// TestAnonymousRequestsCarryNoIdentifier records every request two devices
// make over two polls each and checks that nothing in them differs between
// the devices or between polls: same paths, same headers (no cookies, no
// identifying User-Agent), reports without identifiers.
func TestAnonymousRequestsCarryNoIdentifier(t *testing.T) {
	w := offered(t, worldOptions{})
	var mu sync.Mutex
	log := map[string][]request{}
	current := ""
	w.proxy.on(func(string) bool { return true }, func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var hs []string
		for k, v := range r.Header {
			if k == "Content-Length" {
				continue
			}
			hs = append(hs, k+": "+strings.Join(v, ","))
		}
		sort.Strings(hs)
		mu.Lock()
		log[current] = append(log[current], request{r.Method, r.URL.RequestURI(), strings.Join(hs, "\n"), string(body)})
		mu.Unlock()
		w.proxy.rp.ServeHTTP(rw, r)
	})
	a, b := w.device("a", 0), w.device("b", 0)
	mu.Lock()
	current = "a1"
	mu.Unlock()
	w.cycle(a) // installs 1.1.0 and reports
	mu.Lock()
	current = "b1"
	mu.Unlock()
	w.cycle(b)
	// Second polls: nothing new offered.
	mu.Lock()
	current = "a2"
	mu.Unlock()
	w.cycle(a)
	mu.Lock()
	current = "b2"
	mu.Unlock()
	w.cycle(b)

	if len(log["a1"]) == 0 || len(log["a2"]) == 0 {
		t.Fatal("no requests recorded")
	}
	same := func(x, y string) {
		t.Helper()
		if !equalRequests(log[x], log[y]) {
			t.Fatalf("requests of %s and %s differ:\n%s\n---\n%s", x, y, dump(log[x]), dump(log[y]))
		}
	}
	same("a1", "b1") // two devices, same cycle: indistinguishable
	same("a2", "b2")
	for label, reqs := range log {
		for _, r := range reqs {
			if strings.Contains(r.Header, "Cookie") || strings.Contains(r.Header, "Authorization") || strings.Contains(r.Header, "Referer") {
				t.Errorf("%s: identifying header in %s %s: %s", label, r.Method, r.Path, r.Header)
			}
			if !strings.Contains(r.Header, "User-Agent: uptrust-agent") {
				t.Errorf("%s: unexpected User-Agent: %s", label, r.Header)
			}
			if strings.Contains(r.Path, "?") {
				t.Errorf("%s: query string in %s", label, r.Path)
			}
			if r.Method == http.MethodPost {
				var m map[string]any
				if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
					t.Fatalf("report body: %v", err)
				}
				for k := range m {
					switch k {
					case "product", "version", "outcome", "error_class":
					default:
						t.Errorf("report carries %q: %s", k, r.Body)
					}
				}
			}
		}
	}
}

func equalRequests(x, y []request) bool {
	if len(x) != len(y) {
		return false
	}
	key := func(r request) string { return r.Method + " " + r.Path + "\n" + r.Header + "\n" + r.Body }
	a, b := make([]string, len(x)), make([]string, len(y))
	for i := range x {
		a[i], b[i] = key(x[i]), key(y[i])
	}
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func dump(rs []request) string {
	var sb strings.Builder
	for _, r := range rs {
		sb.WriteString(r.Method + " " + r.Path + " | " + strings.ReplaceAll(r.Header, "\n", "; ") + " | " + r.Body + "\n")
	}
	return sb.String()
}
