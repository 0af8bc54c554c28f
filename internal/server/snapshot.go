package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/report"
)

// Cache-Control values. Versioned metadata ("3.targets.json") and
// content-addressed payloads never change under their URL, so caches may
// keep them for a year. Everything else, notably timestamp.json, must be
// revalidated on every use: its freshness is what protects devices from
// freeze attacks, so no cache may answer for it without asking us.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// Header values shared by every response of a kind. Slices handed to a
// header map are never appended to in place (their capacity equals their
// length), so sharing them between requests is safe.
var (
	hdrJSON        = []string{"application/json"}
	hdrOctetStream = []string{"application/octet-stream"}
	hdrImmutable   = []string{cacheImmutable}
	hdrNoStore     = []string{"no-store"}
	hdrMissing     = []string{"public, max-age=60"}
	hdrTextPlain   = []string{"text/plain; charset=utf-8"}
	hdrNosniff     = []string{"nosniff"}
	hdrAllowRepo   = []string{"GET, HEAD"}
	hdrAllowPost   = []string{"POST"}
)

// snapshot is one immutable view of the served content, with every header
// value precomputed. A snapshot is never modified after newSnapshot returns;
// the server swaps whole snapshots atomically, so a request sees either the
// old content or the new, never a mix.
type snapshot struct {
	generation int64
	metadata   map[string]*metaEntry
	payloads   map[string]*payloadEntry
	// releases holds Content.Releases as sets.
	releases map[string]map[string]struct{}
	// digest identifies the content (paths, bodies, payload digests), so
	// a reload that changes nothing is told from one that does.
	digest [sha256.Size]byte
	// notReady says why this content is not a servable repository ("" when
	// it is): devices need a root and a timestamp to start.
	notReady string
}

// contentDigest hashes what a snapshot serves, in path order.
func contentDigest(s *snapshot) [sha256.Size]byte {
	paths := make([]string, 0, len(s.metadata)+len(s.payloads))
	for p := range s.metadata {
		paths = append(paths, p)
	}
	for p := range s.payloads {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		h.Write([]byte(p))
		h.Write([]byte{0})
		if m := s.metadata[p]; m != nil {
			h.Write([]byte(m.etag))
		} else {
			f := s.payloads[p].file
			fmt.Fprintf(h, "%s %d %s", f.SHA256, f.Size, f.Path)
		}
		h.Write([]byte{0})
	}
	vs := make([]string, 0, len(s.releases))
	for prod, set := range s.releases {
		for v := range set {
			vs = append(vs, prod+"\x00"+v)
		}
		vs = append(vs, prod)
	}
	sort.Strings(vs)
	for _, v := range vs {
		h.Write([]byte(v))
		h.Write([]byte{1})
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// readiness says why content is not servable, or "".
func readiness(s *snapshot) string {
	// Each metadata directory (one per repository) with a root needs a
	// timestamp: a server seeded from a server kit holds the release
	// repository's roots before its first push.
	roots, stamps := map[string]bool{}, map[string]bool{}
	for p := range s.metadata {
		dir := p[:strings.LastIndexByte(p, '/')+1]
		if strings.HasSuffix(p, "root.json") {
			roots[dir] = true
		}
		if strings.HasSuffix(p, "/timestamp.json") {
			stamps[dir] = true
		}
	}
	switch {
	case len(s.metadata) == 0:
		return "no metadata published (is this an initialised project?)"
	case len(roots) == 0:
		return "no root.json published"
	case len(stamps) == 0:
		return "no timestamp.json published"
	}
	var missing []string
	for dir := range roots {
		if !stamps[dir] {
			missing = append(missing, dir)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return "no timestamp.json published in " + strings.Join(missing, ", ") + " (nothing pushed yet?)"
	}
	return ""
}

// metaEntry is a metadata document and its precomputed response headers.
type metaEntry struct {
	body          []byte
	etag          string // quoted strong ETag
	etagHdr       []string
	cacheHdr      []string
	contentLength []string
}

// payloadEntry is a payload file and its precomputed response headers.
type payloadEntry struct {
	file     PayloadFile
	store    PayloadStore // used when file.Path is empty
	etagHdr  []string
	cacheHdr []string
}

// newSnapshot validates c and precomputes everything a response needs.
// Keys must be clean, unescaped URL paths under "/repo/"; a path may not be
// both metadata and a payload; payload digests must be 64 lower-case hex
// digits and sizes non-negative.
func newSnapshot(generation int64, c *Content) (*snapshot, error) {
	if c == nil {
		return nil, fmt.Errorf("server: content is nil")
	}
	s := &snapshot{
		generation: generation,
		metadata:   make(map[string]*metaEntry, len(c.Metadata)),
		payloads:   make(map[string]*payloadEntry, len(c.Payloads)),
	}
	for p, body := range c.Metadata {
		if err := checkRepoPath(p); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:]) + `"`
		cache := cacheRevalidate
		if isVersionedMetadata(p) {
			cache = cacheImmutable
		}
		s.metadata[p] = &metaEntry{
			body:          body,
			etag:          etag,
			etagHdr:       []string{etag},
			cacheHdr:      []string{cache},
			contentLength: []string{strconv.Itoa(len(body))},
		}
	}
	for p, f := range c.Payloads {
		if err := checkRepoPath(p); err != nil {
			return nil, err
		}
		if _, dup := s.metadata[p]; dup {
			return nil, fmt.Errorf("server: path %q is both metadata and payload", p)
		}
		if !isHexDigest(f.SHA256) {
			return nil, fmt.Errorf("server: payload %q: sha256 %q is not 64 lower-case hex digits", p, f.SHA256)
		}
		if f.Size < 0 {
			return nil, fmt.Errorf("server: payload %q: negative size %d", p, f.Size)
		}
		if f.Path == "" && c.Store == nil {
			return nil, fmt.Errorf("server: payload %q: empty file path and no payload store", p)
		}
		cache := cacheRevalidate
		if isContentAddressed(p, f.SHA256) {
			cache = cacheImmutable
		}
		s.payloads[p] = &payloadEntry{
			file:     f,
			store:    c.Store,
			etagHdr:  []string{`"` + f.SHA256 + `"`},
			cacheHdr: []string{cache},
		}
	}
	s.releases = make(map[string]map[string]struct{}, len(c.Releases))
	for product, versions := range c.Releases {
		set := make(map[string]struct{}, len(versions))
		for _, v := range versions {
			set[v] = struct{}{}
		}
		s.releases[product] = set
	}
	s.digest = contentDigest(s)
	s.notReady = readiness(s)
	return s, nil
}

// countable returns r as it may be counted, or an error safe to show to
// the client. The product must be one of the release repository. A version
// that is not one of its releases is refused for installed and rolled_back
// (a device installs only release-signed targets) and counted as
// report.VersionUnknown for failed and rejected: a device refusing an
// offer the release keys never signed, or reporting about a factory version
// never published, is a signal worth keeping, and invented versions then
// add at most one counter per product, outcome and class.
func (s *snapshot) countable(r report.Report) (report.Report, error) {
	versions, ok := s.releases[r.Product]
	if !ok {
		return r, errors.New("unknown report: product is not in the release repository")
	}
	if _, ok := versions[r.Version]; ok || r.Version == report.VersionUnknown {
		return r, nil
	}
	if r.Outcome == report.OutcomeFailed || r.Outcome == report.OutcomeRejected {
		r.Version = report.VersionUnknown
		return r, nil
	}
	return r, errors.New("unknown report: version is not a release of the product")
}

func checkRepoPath(p string) error {
	if !strings.HasPrefix(p, deviceapi.RepoPrefix) {
		return fmt.Errorf("server: content path %q is not under %s", p, deviceapi.RepoPrefix)
	}
	if strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
		strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
		return fmt.Errorf("server: content path %q is not clean", p)
	}
	return nil
}

// isVersionedMetadata reports whether the document name, the part of p
// after its first "/metadata/" component, starts with a version number and
// a dot ("3.targets.json", "2.products/thermostat.json"). TUF never changes
// a version once published, so such documents are immutable.
func isVersionedMetadata(p string) bool {
	i := strings.Index(p, "/metadata/")
	if i < 0 {
		return false
	}
	name := p[i+len("/metadata/"):]
	n := 0
	for n < len(name) && name[n] >= '0' && name[n] <= '9' {
		n++
	}
	return n > 0 && n < len(name) && name[n] == '.'
}

// isContentAddressed reports whether the last element of p is the digest
// itself or starts with the digest and a dot, the TUF consistent-snapshot
// target naming. Only then is the payload immutable under its URL.
func isContentAddressed(p, digest string) bool {
	base := p[strings.LastIndexByte(p, '/')+1:]
	return base == digest || strings.HasPrefix(base, digest+".")
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// etagMatches reports whether an If-None-Match header (all its field lines)
// matches etag under the weak comparison RFC 9110 §13.1.2 prescribes for
// If-None-Match. etag is a quoted strong tag.
func etagMatches(values []string, etag string) bool {
	for _, v := range values {
		if v == etag {
			return true // the common case: the client echoes our tag
		}
		for v != "" {
			v = strings.TrimLeft(v, " \t,")
			if v == "" {
				break
			}
			if v[0] == '*' {
				return true
			}
			v = strings.TrimPrefix(v, "W/")
			if v == "" || v[0] != '"' {
				break // malformed: ignore the rest of this line
			}
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				break
			}
			if v[:end+2] == etag {
				return true
			}
			v = v[end+2:]
		}
	}
	return false
}
