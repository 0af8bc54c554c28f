package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/server"
)

// Op is what a step does. Values are strings so that they read well in logs
// and test failures.
type Op string

// Step operations.
const (
	// OpPutPayload places a payload file (hard link or copy).
	OpPutPayload Op = "put-payload"
	// OpPutMetadata writes a metadata document.
	OpPutMetadata Op = "put-metadata"
	// OpRemove removes a file that is no longer published.
	OpRemove Op = "remove"
)

// Step is one file operation of a run.
type Step struct {
	Op Op
	// Path is the URL path, e.g. "/repo/release/metadata/timestamp.json".
	Path string
	// Data is the document of an OpPutMetadata step.
	Data []byte
	// Payload is the source file of an OpPutPayload step.
	Payload server.PayloadFile
}

func (s Step) String() string { return string(s.Op) + " " + s.Path }

// plan is the ordered steps from one state to the next. A plan is pure
// data, computed without I/O, so its order can be tested on its own.
type plan struct {
	steps []Step
	// state is the mirror's state once every step is done.
	state State
}

// Ranks order the write steps. Everything a timestamp names is in place
// before the timestamp; removals come last.
const (
	rankPayload   = iota // content-addressed targets
	rankDelegated        // N.products/thermostat.json
	rankTargets          // N.targets.json
	rankSnapshot         // N.snapshot.json
	rankRoot             // N.root.json: clients probe for it directly, so as late as possible
	rankUnversioned
	rankTimestamp
	rankRemove
)

// makePlan computes the steps that turn a mirror in state prev into one
// serving c, at time now. Every published file gets a put step, even if the
// mirror already has it: the applier skips files already in place, and a
// file deleted behind the mirror's back comes back. Files of prev that c no
// longer publishes are dated (Unpublished) and removed once grace has
// passed. repos orders the timestamps (see Options.Repositories).
func makePlan(c *server.Content, prev State, now time.Time, grace time.Duration, repos []string) (plan, error) {
	if c == nil {
		return plan{}, fmt.Errorf("mirror: content is nil")
	}
	type ranked struct {
		Step
		rank, repo int
	}
	repoIndex := func(p string) int {
		r := repositoryOf(p)
		for i, b := range repos {
			if b == r {
				return i
			}
		}
		return len(repos)
	}
	var steps []ranked
	next := State{Files: map[string]FileState{}}
	for p, body := range c.Metadata {
		if err := checkPath(p); err != nil {
			return plan{}, err
		}
		rank, err := metadataRank(p)
		if err != nil {
			return plan{}, err
		}
		sum := sha256.Sum256(body)
		next.Files[p] = FileState{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body))}
		steps = append(steps, ranked{Step{Op: OpPutMetadata, Path: p, Data: body}, rank, repoIndex(p)})
	}
	for p, f := range c.Payloads {
		if err := checkPath(p); err != nil {
			return plan{}, err
		}
		if _, dup := c.Metadata[p]; dup {
			return plan{}, fmt.Errorf("mirror: %s is both metadata and a payload", p)
		}
		if !strings.Contains(p, "/targets/") {
			return plan{}, fmt.Errorf("mirror: payload %s is not under a targets/ directory", p)
		}
		next.Files[p] = FileState{SHA256: f.SHA256, Size: f.Size}
		steps = append(steps, ranked{Step{Op: OpPutPayload, Path: p, Payload: f}, rankPayload, repoIndex(p)})
	}
	for _, b := range repos {
		if _, ok := c.Metadata[b+"/metadata/timestamp.json"]; !ok {
			return plan{}, fmt.Errorf("mirror: the content has no timestamp for repository %s", b)
		}
	}
	if err := checkPrefixes(next.Files); err != nil {
		return plan{}, err
	}
	for p, f := range prev.Files {
		if _, ok := next.Files[p]; ok {
			continue
		}
		if f.Unpublished.IsZero() {
			f.Unpublished = now
		}
		if now.Sub(f.Unpublished) >= grace {
			steps = append(steps, ranked{Step{Op: OpRemove, Path: p}, rankRemove, 0})
			continue
		}
		next.Files[p] = f
	}
	sort.Slice(steps, func(i, j int) bool {
		a, b := steps[i], steps[j]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if a.repo != b.repo {
			return a.repo < b.repo
		}
		return a.Path < b.Path
	})
	out := plan{state: next, steps: make([]Step, len(steps))}
	for i, s := range steps {
		out.steps[i] = s.Step
	}
	return out, nil
}

// metadataRank classifies a metadata URL path by the name after its
// "/metadata/" component: "timestamp.json", an unversioned document such as
// "root.json", or "N.role.json".
func metadataRank(p string) (int, error) {
	i := strings.Index(p, "/metadata/")
	if i < 0 {
		return 0, fmt.Errorf("mirror: metadata %s is not under a metadata/ directory", p)
	}
	name := p[i+len("/metadata/"):]
	if name == "timestamp.json" {
		return rankTimestamp, nil
	}
	n := 0
	for n < len(name) && name[n] >= '0' && name[n] <= '9' {
		n++
	}
	if n == 0 || n == len(name) || name[n] != '.' {
		return rankUnversioned, nil
	}
	switch strings.TrimSuffix(name[n+1:], ".json") {
	case "root":
		return rankRoot, nil
	case "snapshot":
		return rankSnapshot, nil
	case "targets":
		return rankTargets, nil
	default:
		return rankDelegated, nil
	}
}

// isVersioned reports whether p names versioned metadata ("N.role.json"),
// which never changes once published.
func isVersioned(p string) bool {
	r, err := metadataRank(p)
	return err == nil && r >= rankDelegated && r <= rankRoot
}

func isTimestamp(p string) bool { return strings.HasSuffix(p, "/metadata/timestamp.json") }

// repositoryOf is the base path of the repository p belongs to: the part
// before "/metadata/" or "/targets/".
func repositoryOf(p string) string {
	for _, sep := range []string{"/metadata/", "/targets/"} {
		if i := strings.Index(p, sep); i >= 0 {
			return p[:i]
		}
	}
	return p
}

// checkPath accepts clean URL paths under /repo/ that name a file inside
// the mirror: no empty, "." or ".." elements, no backslashes or NULs, no
// dot files (temporary names start with a dot).
func checkPath(p string) error {
	rel, ok := strings.CutPrefix(p, deviceapi.RepoPrefix)
	if !ok || !fs.ValidPath("repo/"+rel) || strings.ContainsAny(p, "\\\x00") {
		return fmt.Errorf("mirror: content path %q is not a clean path under /repo/", p)
	}
	for _, el := range strings.Split(rel, "/") {
		if strings.HasPrefix(el, ".") {
			return fmt.Errorf("mirror: content path %q has a dot-file element", p)
		}
	}
	return nil
}

// checkPrefixes refuses a set of paths where one path is a directory of
// another: no tree of plain files can hold both.
func checkPrefixes(files map[string]FileState) error {
	for p := range files {
		for d := p; ; {
			i := strings.LastIndexByte(d, '/')
			if i <= 0 {
				break
			}
			d = d[:i]
			if _, ok := files[d]; ok {
				return fmt.Errorf("mirror: %s is both a file and the directory of %s", d, p)
			}
		}
	}
	return nil
}
