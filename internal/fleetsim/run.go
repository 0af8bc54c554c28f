// Package fleetsim simulates many managed devices in one process against
// a real uptrust server, speaking the real device protocol: an Ed25519 key
// per device signing every request (internal/devauth), enrolment with a
// token, go-tuf's client workflow on both repositories (the agent's TAP 4
// map), the payload downloaded and hashed into an in-memory A/B slot, the
// outcome as a signed event, and periodic polling with jitter. It is the
// engine of `uptrust sim` and of the load benchmark of authenticated update
// checks (scripts/bench-managed-checks.sh).
//
// Memory per device is kept small so that 10,000 devices fit one process:
// everything immutable (roots, server, one HTTP transport) is shared; a
// device holds its key, a few strings and its verified metadata, whose
// bytes are interned (unique.Handle), so the release repository, the same
// for every device, is held once. Installing is simulated: a device keeps
// only the length and SHA-256 of the image it wrote into a slot, and
// commits it unless --fail-ratio says it fails.
package fleetsim

import (
	"cmp"
	"container/heap"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/multirepo"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
)

// Options configure a run.
type Options struct {
	// Server is the server's public base URL (http or https).
	Server string
	// Product is the managed product the devices belong to; Hardware, when
	// set, is their hardware revision (releases that do not list it are
	// skipped). Version and SecurityVersion are the factory release.
	Product, Hardware string
	Version           string
	SecurityVersion   uint64
	// Token is the enrolment token ("" to enrol without one: the keys
	// must then be pre-authorised, which a simulator cannot do).
	Token string
	// ReleaseRoot and FleetRoot are the trusted root.json documents the
	// devices are provisioned with.
	ReleaseRoot, FleetRoot []byte
	// Devices is how many devices run.
	Devices int
	// Interval between two checks of a device, with Jitter (a fraction
	// in [0, 0.5]) of it drawn uniformly either way. 0 means back to back.
	Interval time.Duration
	Jitter   float64
	// FailRatio is the share of devices whose install fails, in [0, 1].
	FailRatio float64
	// Duration ends the polling (0: no limit); Checks ends it once every
	// device made that many update checks (0: no limit; a pending device
	// makes none until the operator accepts it). One of them, or a
	// cancelled ctx, ends a run.
	Duration time.Duration
	Checks   int
	// Rounds repeats the polling of Duration (default 1), each round
	// reported on its own in Summary.Rounds, the devices enrolled once.
	Rounds int
	// Concurrency is how many checks run at once (default 64); Conns the
	// HTTP connections kept open to the server (default Concurrency).
	Concurrency, Conns int
	// FullVerify runs go-tuf's whole client workflow at every check.
	// Without it the devices check as a managed agent does: after a full
	// check that found nothing to install, a check is one conditional
	// request of the device's fleet timestamp, and a 304 ends it, until
	// the full refresh is due (agent.ConditionalAllowed with FullCheckEvery).
	FullVerify bool
	// FullCheckEvery is the agent's full_check_every (default
	// agent.DefaultFullCheckEvery).
	FullCheckEvery time.Duration
	// Progress receives a line per phase; nil for none.
	Progress io.Writer
	// Polling, when set, is called when the measured polling starts
	// (true) and ends (false), e.g. to profile just that.
	Polling func(started bool)
}

// Sim is the shared, immutable part of a run, and its counters.
type Sim struct {
	server, product, hardware, token string
	roots                            [2][]byte
	repoMap                          *multirepo.MultiRepoMapType
	transport                        *http.Transport
	failRatio                        float64
	fullVerify                       bool
	fullEvery                        time.Duration
	stats                            stats
	reqBase                          int64       // requests before the polling
	round                            *roundStats // set between rounds only
}

// Summary is the result of a run (`uptrust sim --json` prints it).
type Summary struct {
	Devices  int `json:"devices"`
	Enrolled int `json:"enrolled"`
	Accepted int `json:"accepted"`
	Pending  int `json:"pending"`
	Refused  int `json:"refused"`
	// EnrolSeconds is the time the enrolment and first check of all
	// devices took (not measured as checks).
	EnrolSeconds float64 `json:"enrol_seconds"`
	// Checks are the update checks that succeeded, in Seconds of polling.
	Checks int64 `json:"checks"`
	// Verified are the checks of the whole run (first checks included)
	// that ran go-tuf's client workflow: every check with FullVerify, else
	// those that saw new metadata.
	Verified     int64   `json:"verified_checks"`
	Seconds      float64 `json:"seconds"`
	ChecksPerSec float64 `json:"checks_per_second"`
	CheckP50Ms   float64 `json:"check_p50_ms"`
	CheckP99Ms   float64 `json:"check_p99_ms"`
	LagP99Ms     float64 `json:"schedule_lag_p99_ms"`
	// Requests are the signed requests sent while polling.
	Requests     int64       `json:"requests"`
	RequestsPerS float64     `json:"requests_per_second"`
	Succeeded    int64       `json:"updates_succeeded"`
	Failed       int64       `json:"updates_failed"`
	PayloadBytes int64       `json:"payload_bytes"`
	Errors       int64       `json:"errors"`
	ErrorKinds   []ErrorKind `json:"error_kinds"`
	// CPUSeconds is the simulator's CPU time (user and system) over the
	// rounds of polling (0 where not measured).
	CPUSeconds    float64        `json:"cpu_seconds"`
	RSSBytes      int64          `json:"rss_bytes"`
	PeakRSSBytes  int64          `json:"peak_rss_bytes"`
	HeapBytes     uint64         `json:"heap_bytes"`
	HeapPerDevice float64        `json:"heap_bytes_per_device"`
	Versions      map[string]int `json:"versions"`
	// Rounds are the rounds of polling; the fields above cover them all.
	Rounds []Round `json:"rounds"`
}

// validate checks o and names the first problem.
func (o *Options) validate() error {
	u, err := url.Parse(o.Server)
	switch {
	case o.Server == "":
		return errors.New("fleetsim: no server URL")
	case err != nil:
		return fmt.Errorf("fleetsim: server URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("fleetsim: server URL %q: want http://HOST[:PORT] or https://…", o.Server)
	case o.Product == "":
		return errors.New("fleetsim: no product")
	case o.Devices < 1:
		return fmt.Errorf("fleetsim: %d devices: want at least 1", o.Devices)
	case o.Interval < 0:
		return fmt.Errorf("fleetsim: negative interval %v", o.Interval)
	case o.Jitter < 0 || o.Jitter > 0.5:
		return fmt.Errorf("fleetsim: jitter %v: want a fraction in [0, 0.5]", o.Jitter)
	case o.FailRatio < 0 || o.FailRatio > 1 || o.FailRatio != o.FailRatio:
		return fmt.Errorf("fleetsim: fail ratio %v: want a fraction in [0, 1]", o.FailRatio)
	case o.Duration < 0 || o.Checks < 0 || o.Rounds < 0:
		return errors.New("fleetsim: negative duration, checks or rounds")
	case o.Rounds > 1 && o.Duration == 0:
		return errors.New("fleetsim: rounds need a duration")
	case o.Concurrency < 0 || o.Conns < 0:
		return errors.New("fleetsim: negative concurrency or connections")
	case release.ValidVersion(o.Version) != nil:
		return fmt.Errorf("fleetsim: factory version %q: %v", o.Version, release.ValidVersion(o.Version))
	}
	for name, b := range map[string][]byte{"release": o.ReleaseRoot, "fleet": o.FleetRoot} {
		if _, err := metadata.Root().FromBytes(b); err != nil {
			return fmt.Errorf("fleetsim: %s root: %w", name, err)
		}
	}
	return nil
}

// New checks o and returns the shared part of a run.
func New(o Options) (*Sim, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	conns := o.Conns
	if conns == 0 {
		conns = o.concurrency()
	}
	server := trimSlash(o.Server)
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableCompression:  true,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Sim{server: server, product: o.Product, hardware: o.Hardware, token: o.Token,
		roots: [2][]byte{o.ReleaseRoot, o.FleetRoot}, repoMap: agent.RepoMap(server), transport: tr, failRatio: o.FailRatio, fullVerify: o.FullVerify,
		fullEvery: cmp.Or(o.FullCheckEvery, agent.DefaultFullCheckEvery)}, nil
}

func (o *Options) concurrency() int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	return 64
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

func progress(o Options, format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Run enrols o.Devices devices, then polls until o.Duration passed, every
// device made o.Checks checks, or ctx ends; it returns the summary. A
// server that does not answer, and a run in which no device could enrol,
// are errors (the summary is returned too, for the second).
func Run(ctx context.Context, o Options) (*Summary, error) {
	s, err := New(o)
	if err != nil {
		return nil, err
	}
	defer s.transport.CloseIdleConnections()
	if err := s.probe(ctx); err != nil {
		return nil, err
	}
	devs := make([]device, o.Devices)
	for i := range devs {
		d := &devs[i]
		pub, key, err := ed25519.GenerateKey(crand.Reader)
		if err != nil {
			return nil, fmt.Errorf("fleetsim: %w", err)
		}
		d.key, d.keyID = key, devauth.KeyID(pub)
		crand.Read(d.seed[:])
		d.version, d.secVer = o.Version, o.SecurityVersion
	}
	sum := &Summary{Devices: o.Devices, Versions: map[string]int{}}

	// Enrolment, all devices, o.concurrency() at a time.
	progress(o, "enrolling %d devices", o.Devices)
	t0 := time.Now()
	parallel(ctx, o.concurrency(), len(devs), func(i int) {
		if err := s.enrol(ctx, &devs[i]); err != nil && ctx.Err() == nil {
			s.stats.fail(err)
		}
	})
	s.count(devs, sum)
	if sum.Accepted > 0 {
		// The first check of every accepted device (the one that installs
		// what is rolled out, as after a fleet's first start) is not
		// measured: polling measures the steady state.
		progress(o, "first check of %d accepted devices", sum.Accepted)
		parallel(ctx, o.concurrency(), len(devs), func(i int) {
			if devs[i].state == stateAccepted {
				s.once(ctx, &devs[i], false)
			}
			// A device that enrolled again with its new inventory has a
			// new fleet view (its record changed): its next check is a
			// full one, made here too, so that polling starts settled.
			if d := &devs[i]; d.state == stateAccepted && d.reenrolled {
				d.reenrolled = false
				s.once(ctx, d, false)
			}
		})
	}
	sum.EnrolSeconds = time.Since(t0).Seconds()
	progress(o, "enrolled %d of %d devices and checked once in %.1f s: %d accepted, %d pending, %d refused",
		sum.Enrolled, o.Devices, sum.EnrolSeconds, sum.Accepted, sum.Pending, sum.Refused)
	if sum.Enrolled == 0 {
		s.finish(sum, devs, 0)
		if ks := s.stats.errorKinds(); len(ks) > 0 {
			return sum, fmt.Errorf("fleetsim: no device enrolled: %s", ks[0].Example)
		}
		return sum, errors.New("fleetsim: no device enrolled")
	}

	rounds := max(o.Rounds, 1)
	if o.Polling != nil {
		o.Polling(true)
	}
	t1, cpu1 := time.Now(), cpuTime()
	s.reqBase = s.stats.requests.Load()
	for r := 1; r <= rounds && ctx.Err() == nil; r++ {
		progress(o, "polling every %v (±%.0f %%), round %d of %d", o.Interval, o.Jitter*100, r, rounds)
		runtime.GC()
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if o.Duration > 0 {
			pctx, cancel = context.WithTimeout(ctx, o.Duration)
		}
		s.round = &roundStats{}
		req0, t := s.stats.requests.Load(), time.Now()
		s.poll(pctx, o, devs)
		cancel()
		secs := time.Since(t).Seconds()
		rs := Round{Checks: s.round.checks.Load(), Seconds: secs, Requests: s.stats.requests.Load() - req0,
			CheckP50Ms: ms(s.round.checkTime.quantile(0.5)), CheckP99Ms: ms(s.round.checkTime.quantile(0.99)),
			LagP99Ms: ms(s.round.lag.quantile(0.99))}
		if secs > 0 {
			rs.ChecksPerSec = float64(rs.Checks) / secs
		}
		sum.Rounds = append(sum.Rounds, rs)
		progress(o, "round %d: %d checks in %.1f s = %.0f/s, p50 %.1f ms, p99 %.1f ms", r, rs.Checks, secs, rs.ChecksPerSec, rs.CheckP50Ms, rs.CheckP99Ms)
	}
	sum.CPUSeconds = (cpuTime() - cpu1).Seconds()
	if o.Polling != nil {
		o.Polling(false)
	}
	s.count(devs, sum)
	s.finish(sum, devs, time.Since(t1))
	return sum, nil
}

// Round is one round of polling (Options.Rounds).
type Round struct {
	Checks       int64   `json:"checks"`
	Seconds      float64 `json:"seconds"`
	ChecksPerSec float64 `json:"checks_per_second"`
	CheckP50Ms   float64 `json:"check_p50_ms"`
	CheckP99Ms   float64 `json:"check_p99_ms"`
	LagP99Ms     float64 `json:"schedule_lag_p99_ms"`
	Requests     int64   `json:"requests"`
}

// roundStats are the counters of the current round.
type roundStats struct {
	checks         atomic.Int64
	checkTime, lag histogram
}

// probe makes sure the server answers at all (an anonymous GET of the
// release timestamp), so that a wrong URL is one clear error.
func (s *Sim) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.server+deviceapi.MetadataPath(deviceapi.ReleaseBase, "timestamp", 0), nil)
	if err != nil {
		return fmt.Errorf("fleetsim: server URL: %w", err)
	}
	resp, err := (&http.Client{Transport: s.transport}).Do(req)
	if err != nil {
		return fmt.Errorf("fleetsim: the server %s does not answer: %w", s.server, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fleetsim: the server %s is not an uptrust server: GET %s answered %s", s.server, req.URL.Path, resp.Status)
	}
	return nil
}

// parallel runs f(0..n-1) on w goroutines.
func parallel(ctx context.Context, w, n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(w, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

func (s *Sim) count(devs []device, sum *Summary) {
	sum.Enrolled, sum.Accepted, sum.Pending, sum.Refused = 0, 0, 0, 0
	for i := range devs {
		switch devs[i].state {
		case statePending:
			sum.Pending++
		case stateAccepted:
			sum.Accepted++
		case stateRefused:
			sum.Refused++
		}
		if devs[i].id != "" {
			sum.Enrolled++
		}
	}
}

func (s *Sim) finish(sum *Summary, devs []device, polled time.Duration) {
	st := &s.stats
	sum.Checks = st.checks.Load()
	sum.Verified = st.verified.Load()
	sum.Seconds = polled.Seconds()
	sum.Requests = st.requests.Load() - s.reqBase
	if sum.Seconds > 0 {
		sum.ChecksPerSec = float64(sum.Checks) / sum.Seconds
		sum.RequestsPerS = float64(sum.Requests) / sum.Seconds
	}
	sum.CheckP50Ms = ms(st.checkTime.quantile(0.50))
	sum.CheckP99Ms = ms(st.checkTime.quantile(0.99))
	sum.LagP99Ms = ms(st.lag.quantile(0.99))
	sum.Succeeded, sum.Failed = st.succeeded.Load(), st.failed.Load()
	sum.PayloadBytes = st.payloadBytes.Load()
	sum.ErrorKinds = st.errorKinds()
	for _, k := range sum.ErrorKinds {
		sum.Errors += k.Count
	}
	for i := range devs {
		sum.Versions[devs[i].version]++
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	sum.HeapBytes = m.HeapAlloc
	sum.HeapPerDevice = float64(m.HeapAlloc) / float64(len(devs))
	sum.RSSBytes, sum.PeakRSSBytes = rss()
	runtime.KeepAlive(devs)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// poll runs the checks: every device is due once at a random point of
// the first interval, then every interval ± jitter after its last check
// started; o.concurrency() workers take due devices, earliest first.
func (s *Sim) poll(ctx context.Context, o Options, devs []device) {
	q := &schedule{wake: make(chan struct{}, 1)}
	now := time.Now()
	active := 0
	for i := range devs {
		if devs[i].state == stateAccepted || devs[i].state == statePending {
			var off time.Duration
			if o.Interval > 0 {
				off = rand.N(o.Interval)
			}
			q.h = append(q.h, due{at: now.Add(off), dev: i})
			active++
		}
	}
	heap.Init(&q.h)
	var left atomic.Int64
	left.Store(int64(active))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan due)
	var wg sync.WaitGroup
	for range o.concurrency() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				d := &devs[it.dev]
				start := time.Now()
				s.stats.lag.add(start.Sub(it.at))
				s.round.lag.add(start.Sub(it.at))
				if s.once(ctx, d, true) {
					d.checks++
				}
				if d.stopped || o.Checks > 0 && d.checks >= o.Checks {
					if left.Add(-1) == 0 {
						cancel()
					}
					continue
				}
				next := start.Add(o.Interval)
				if o.Interval > 0 && o.Jitter > 0 {
					span := time.Duration(float64(o.Interval) * o.Jitter)
					next = next.Add(rand.N(2*span+1) - span)
				}
				q.push(due{at: next, dev: it.dev})
			}
		}()
	}
	q.dispatch(ctx, work)
	close(work)
	wg.Wait()
}

// once is one check of d: the device API while it is not accepted, then an
// update check, counted in the checks and their latency when measure is
// set. It reports whether an update check ran (what Options.Checks
// counts: a pending device waits for the operator as long as the run
// lasts).
func (s *Sim) once(ctx context.Context, d *device, measure bool) bool {
	if d.state == statePending {
		if err := s.readState(ctx, d); err != nil {
			s.stats.fail(err)
			return false
		}
	}
	switch d.state {
	case stateRefused:
		d.stopped = true
		return false
	case statePending:
		return false
	}
	t := time.Now()
	out, err := s.check(ctx, d)
	switch out {
	case outcomeSucceeded:
		s.stats.succeeded.Add(1)
	case outcomeFailed:
		s.stats.failed.Add(1)
	}
	if err != nil {
		if ctx.Err() != nil {
			return true // the run ended during the check
		}
		s.stats.fail(err)
		if refusedRepo(err) {
			// As the agent: after a failed check, ask the device API.
			if err := s.readState(ctx, d); err != nil {
				s.stats.fail(err)
			}
		}
		return true
	}
	if measure {
		s.stats.checks.Add(1)
		s.stats.checkTime.add(time.Since(t))
		s.round.checks.Add(1)
		s.round.checkTime.add(time.Since(t))
	}
	return true
}

// refusedRepo says whether a check failed on a 403 of a /repo/ request.
func refusedRepo(err error) bool {
	var h *metadata.ErrDownloadHTTP
	var se *statusError
	return errors.As(err, &h) && h.StatusCode == http.StatusForbidden || errors.As(err, &se) && se.status == http.StatusForbidden
}

// due is a device's next check.
type due struct {
	at  time.Time
	dev int
}

type dueHeap []due

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(due)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// schedule is the queue of due checks.
type schedule struct {
	mu   sync.Mutex
	h    dueHeap
	wake chan struct{}
}

func (q *schedule) push(d due) {
	q.mu.Lock()
	heap.Push(&q.h, d)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// dispatch hands due checks to work, earliest first, until ctx ends.
func (q *schedule) dispatch(ctx context.Context, work chan<- due) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		q.mu.Lock()
		var next *due
		if len(q.h) > 0 {
			d := q.h[0]
			next = &d
		}
		q.mu.Unlock()
		wait := time.Hour
		if next != nil {
			wait = time.Until(next.at)
		}
		if next != nil && wait <= 0 {
			q.mu.Lock()
			d := heap.Pop(&q.h).(due)
			q.mu.Unlock()
			select {
			case work <- d:
				continue
			case <-ctx.Done():
				return
			}
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-q.wake:
		case <-ctx.Done():
			return
		}
	}
}
