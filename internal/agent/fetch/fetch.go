// Package fetch is the agent's HTTP client: one GET at a time, with retries,
// a byte limit on every response and a stall timeout on every wait.
//
// Privacy: requests carry no cookies (there is no jar), no Referer, no
// credentials and no identifying headers. The User-Agent is the constant
// UserAgent, identical on every device and every version. Responses are not
// transparently decompressed, so the bytes a caller reads are the bytes the
// server sent.
//
// Security: plain http:// is refused unless the host is loopback or the
// Config allows it; redirects are checked by the same rule. With
// Config.CAFile set, only the CAs in that file are trusted. TLS 1.2 is the
// minimum. No proxy is used, whatever the environment says.
//
// Every response body is limited: reading more than the maxLength given to
// Get fails with ErrTooLong instead of truncating, so an endless-data attack
// costs at most maxLength bytes. A server that stops sending for
// Config.StallTimeout fails the read with ErrStalled.
//
// Resuming: GetFrom asks for the rest of a resource from an offset with
// Range and checks that a 206 answer starts exactly there and stays within
// the maximum. No request carries a value the server chose (an ETag in
// If-Range or If-None-Match, a cookie): such a value could be unique per
// device and recognise it later from another address. With Config.RateLimit
// set, every body is read through one token bucket shared by the Client.
package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// UserAgent is the User-Agent of every request. It names no version and no
// device on purpose: the same for the whole installed base.
const UserAgent = "uptrust-agent"

// Errors callers may test with errors.Is.
var (
	// ErrNotFound is matched by a 404 response (see *StatusError).
	ErrNotFound = errors.New("fetch: not found")
	// ErrTooLong means the response had more bytes than the caller's
	// maximum; the excess was not delivered.
	ErrTooLong = errors.New("fetch: response longer than allowed")
	// ErrStalled means the server sent nothing for Config.StallTimeout.
	ErrStalled = errors.New("fetch: stalled")
	// ErrTooSlow means the server sent fewer than Config.MinRate bytes per
	// second over Config.MinRateWindow of waiting for it.
	ErrTooSlow = errors.New("fetch: too slow")
	// ErrDeadline means one metadata file took longer than
	// Config.MetadataTimeout in all.
	ErrDeadline = errors.New("fetch: deadline exceeded")
	// ErrInsecureURL means a URL was refused by CheckURL.
	ErrInsecureURL = errors.New("fetch: insecure url")
	// ErrBadRange means a 206 response did not answer the range asked
	// for: another start, several ranges, or a Content-Range that does not
	// parse or contradicts the Content-Length.
	ErrBadRange = errors.New("fetch: partial response does not match the range requested")
)

// StatusError is a response whose status was not 200 OK. It matches
// ErrNotFound when StatusCode is 404.
type StatusError struct {
	// Method is the request's method; empty means GET.
	Method     string
	URL        string
	StatusCode int
}

func (e *StatusError) Error() string {
	m := e.Method
	if m == "" {
		m = http.MethodGet
	}
	return fmt.Sprintf("fetch: %s %s: status %d %s", m, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
}

// Is reports whether target is ErrNotFound and e is a 404.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// Default values for zero Config fields.
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultStallTimeout   = 60 * time.Second
	DefaultMaxAttempts    = 5
	DefaultBaseBackoff    = 1 * time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	// DefaultMetadataTimeout bounds one metadata file: a few MiB of
	// targets metadata take under a minute on a 2G link.
	DefaultMetadataTimeout = 5 * time.Minute
	// DefaultMinRate and DefaultMinRateWindow: a server that sends less
	// than 512 bytes per second over two minutes of waiting for it is cut
	// (a payload resumes where it stopped). Real links that slow do not
	// carry firmware; a drip of a byte a minute no longer holds a check
	// for ever.
	DefaultMinRate       = 512
	DefaultMinRateWindow = 2 * time.Minute
	maxRedirects         = 5
)

// Config configures a Client. Zero durations and counts take the defaults
// above.
type Config struct {
	// CAFile is an optional PEM bundle. When set, only these CAs are trusted
	// for HTTPS; otherwise the system roots are.
	CAFile string
	// AllowInsecureHTTP permits plain http:// to non-loopback hosts. Meant
	// for development; TUF still verifies what is fetched, but metadata
	// freshness and privacy are then at the network's mercy.
	AllowInsecureHTTP bool
	// ConnectTimeout bounds the TCP connect and the TLS handshake.
	ConnectTimeout time.Duration
	// StallTimeout fails a request when no byte arrives for this long: from
	// the start of an attempt until the response headers (connect included),
	// and during each body Read.
	StallTimeout time.Duration
	// MaxAttempts is how many times Get tries one URL before giving up.
	MaxAttempts int
	// BaseBackoff is the backoff ceiling after the first failure; it doubles
	// per attempt up to MaxBackoff. The actual wait is drawn uniformly from
	// [0, ceiling) ("full jitter").
	BaseBackoff, MaxBackoff time.Duration
	// Rand returns a uniform value in [0, n) for n > 0; it must be safe for
	// concurrent use. Nil means math/rand/v2.Int64N. Tests inject their own.
	Rand func(n int64) int64
	// Sleep waits for d or until ctx is done, returning ctx's error in the
	// latter case. Nil means a real timer. Tests inject their own.
	Sleep func(ctx context.Context, d time.Duration) error
	// RateLimit caps the bytes per second read from all response bodies
	// of the Client together (0: no limit). See NewRateLimiter.
	RateLimit int64
	// Now tells the time to the rate limiter. Nil means time.Now. Tests
	// inject their own, with a Sleep that advances it.
	Now func() time.Time
	// MetadataTimeout bounds the fetch of one metadata file by the
	// TUFFetcher, retries included, however the bytes trickle in.
	MetadataTimeout time.Duration
	// MinRate (bytes per second) and MinRateWindow: a response body that
	// delivers fewer than MinRate*MinRateWindow bytes while Read waited
	// MinRateWindow for the server fails with ErrTooSlow. Time the caller
	// spends elsewhere (writing, the rate limit) does not count. MinRate
	// < 0 turns the check off.
	MinRate       int64
	MinRateWindow time.Duration
	// OneConnectionPerRequest makes every request open its own
	// connection and close it afterwards (no keep-alive): a Client for
	// requests that must not share a connection with others.
	OneConnectionPerRequest bool
	// Wrap, when set, wraps the client's transport: every request the
	// Client sends, redirects included, goes through what it returns (the
	// managed agent signs them with its device key, devauth.Transport).
	Wrap func(base http.RoundTripper) http.RoundTripper
}

// Client is the agent's HTTP client. It is safe for concurrent use.
type Client struct {
	cfg  Config
	hc   *http.Client
	rate *RateLimiter // nil: no limit
}

// New returns a Client for cfg. It fails if CAFile cannot be read or holds
// no certificate.
func New(cfg Config) (*Client, error) {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = DefaultBaseBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.BaseBackoff {
		cfg.MaxBackoff = cfg.BaseBackoff
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Int64N
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MetadataTimeout <= 0 {
		cfg.MetadataTimeout = DefaultMetadataTimeout
	}
	if cfg.MinRate == 0 {
		cfg.MinRate = DefaultMinRate
	}
	if cfg.MinRateWindow <= 0 {
		cfg.MinRateWindow = DefaultMinRateWindow
	}
	if cfg.RateLimit < 0 {
		return nil, fmt.Errorf("fetch: negative rate limit %d", cfg.RateLimit)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("fetch: reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("fetch: CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: cfg.ConnectTimeout,
		DisableCompression:  true,
		DisableKeepAlives:   cfg.OneConnectionPerRequest,
		MaxIdleConns:        2,
		IdleConnTimeout:     90 * time.Second,
	}
	c := &Client{cfg: cfg}
	if cfg.RateLimit > 0 {
		c.rate = NewRateLimiter(cfg.RateLimit, cfg.Now)
	}
	var rt http.RoundTripper = tr
	if cfg.Wrap != nil {
		rt = cfg.Wrap(tr)
	}
	c.hc = &http.Client{
		Transport: rt,
		Jar:       nil,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("fetch: more than %d redirects", maxRedirects)
			}
			// net/http sets Referer on redirects; we send none.
			req.Header.Del("Referer")
			return c.CheckURL(req.URL.String())
		},
	}
	return c, nil
}

// CheckURL validates a URL the agent is about to use: http or https, a
// host, no user info, and plain http only to a loopback host (127.0.0.0/8,
// ::1, "localhost") unless Config.AllowInsecureHTTP is set. Refusals match
// ErrInsecureURL.
func (c *Client) CheckURL(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("fetch: parsing url: %w", err)
	}
	if u.User != nil {
		return fmt.Errorf("%w: %s carries user info", ErrInsecureURL, u.Redacted())
	}
	if u.Hostname() == "" {
		return fmt.Errorf("fetch: url %q has no host", base)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if c.cfg.AllowInsecureHTTP || isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%w: plain http to non-loopback host %s (use https or allow insecure http)", ErrInsecureURL, u.Host)
	}
	return fmt.Errorf("fetch: url %q: unsupported scheme %q", base, u.Scheme)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Get fetches rawURL and returns its body. The caller must Close it.
//
// Failures before the body is returned (network errors, 5xx, 429, stalls
// while waiting for headers) are retried up to Config.MaxAttempts times with
// exponential backoff and full jitter; a Retry-After in delta-seconds is
// honoured up to Config.MaxBackoff. Other statuses fail at once with a
// *StatusError. Errors inside the body are not retried: the caller decides.
//
// maxLength is the most bytes the caller accepts (>= 0). A Content-Length
// above it fails at once; reading beyond it fails with ErrTooLong. Each Read
// that waits longer than Config.StallTimeout fails with ErrStalled. ctx
// governs the whole request, body included.
func (c *Client) Get(ctx context.Context, rawURL string, maxLength int64) (io.ReadCloser, error) {
	r, err := c.GetFrom(ctx, rawURL, maxLength, 0)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Resource is a response body with what the server said about it. The
// caller must Close it.
type Resource struct {
	io.ReadCloser
	// Offset is where the body starts within the resource: the offset
	// asked for after a 206 response, 0 after a 200 (the server ignored
	// the Range).
	Offset int64
	// Size is the resource's whole length as the server stated it (the
	// complete length of Content-Range, or the Content-Length of a 200),
	// or -1 if it did not.
	Size int64
}

// GetFrom fetches rawURL from byte offset off on, as Get does (same
// retries, limits and stall timeout), for a resource of at most maxLength
// bytes. With off > 0 it sends "Range: bytes=off-", and no If-Range: the
// caller verifies what it resumes by its hashes, not by the server's word.
//
// The answer is checked before it is returned: a 200 must not announce more
// than maxLength bytes; a 206 must carry a single Content-Range that starts
// at off (else ErrBadRange) and whose complete length, when stated, is at
// most maxLength (else ErrTooLong). The body then delivers at most the bytes
// the Content-Range announces, and never more than maxLength-off: beyond
// that, reading fails with ErrTooLong. Anything but 200 or 206 is a
// *StatusError (a 416 among them). off must be within [0, maxLength].
func (c *Client) GetFrom(ctx context.Context, rawURL string, maxLength, off int64) (*Resource, error) {
	if maxLength < 0 {
		return nil, fmt.Errorf("fetch: GET %s: negative maxLength %d", rawURL, maxLength)
	}
	if off < 0 || off > maxLength {
		return nil, fmt.Errorf("fetch: GET %s: offset %d outside [0, %d]", rawURL, off, maxLength)
	}
	if err := c.CheckURL(rawURL); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 1; ; attempt++ {
		res, retryAfter, err := c.try(ctx, rawURL, maxLength, off)
		if err == nil {
			return res, nil
		}
		lastErr = err
		if retryAfter < 0 {
			return nil, err
		}
		if attempt >= c.cfg.MaxAttempts {
			break
		}
		wait := c.backoff(attempt)
		if retryAfter > wait {
			wait = min(retryAfter, c.cfg.MaxBackoff)
		}
		if err := c.cfg.Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("fetch: GET %s: waiting to retry after %v: %w", rawURL, lastErr, err)
		}
	}
	return nil, fmt.Errorf("fetch: GET %s: giving up after %d attempts: %w", rawURL, c.cfg.MaxAttempts, lastErr)
}

// Backoff waits as Get does between attempts, after failed attempt n
// (1-based): a jittered, exponentially growing time up to
// Config.MaxBackoff. It returns ctx's error if ctx ends first. Callers that
// retry on their own (a dropped download) use it to keep the same pacing.
func (c *Client) Backoff(ctx context.Context, n int) error {
	return c.cfg.Sleep(ctx, c.backoff(n))
}

// backoff returns the jittered wait after failed attempt n (1-based).
func (c *Client) backoff(n int) time.Duration {
	ceiling := c.cfg.BaseBackoff
	for i := 1; i < n && ceiling < c.cfg.MaxBackoff; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, c.cfg.MaxBackoff)
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(c.cfg.Rand(int64(ceiling)))
}

// try makes one attempt. On failure, retryAfter >= 0 means the failure is
// transient (retry, waiting at least retryAfter); retryAfter < 0 means it
// is permanent.
func (c *Client) try(ctx context.Context, rawURL string, maxLength, off int64) (res *Resource, retryAfter time.Duration, err error) {
	if err := ctx.Err(); err != nil {
		return nil, -1, fmt.Errorf("fetch: GET %s: %w", rawURL, err)
	}
	reqCtx, cancel := context.WithCancelCause(ctx)
	b := &body{
		url:     rawURL,
		limit:   maxLength,
		stall:   c.cfg.StallTimeout,
		ctx:     reqCtx,
		cancel:  cancel,
		rate:    c.rate,
		sleep:   c.cfg.Sleep,
		minRate: c.cfg.MinRate,
		window:  c.cfg.MinRateWindow,
	}
	b.timer = time.AfterFunc(c.cfg.StallTimeout, b.fire)
	defer func() {
		if err != nil {
			b.timer.Stop()
			cancel(nil)
		}
	}()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, -1, fmt.Errorf("fetch: GET %s: %w", rawURL, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		err = b.translate(err)
		if ctx.Err() != nil || isPermanent(err) {
			return nil, -1, fmt.Errorf("fetch: GET %s: %w", rawURL, err)
		}
		return nil, 0, fmt.Errorf("fetch: GET %s: %w", rawURL, err)
	}
	b.timer.Stop()
	res = &Resource{ReadCloser: b, Size: -1}
	switch {
	case resp.StatusCode == http.StatusOK:
		if resp.ContentLength > maxLength {
			resp.Body.Close()
			return nil, -1, fmt.Errorf("%w: GET %s: Content-Length %d exceeds maximum %d", ErrTooLong, rawURL, resp.ContentLength, maxLength)
		}
		res.Size = resp.ContentLength
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		first, last, size, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err == nil && (size > maxLength || last >= maxLength) {
			resp.Body.Close()
			return nil, -1, fmt.Errorf("%w: GET %s: Content-Range %q exceeds maximum %d", ErrTooLong, rawURL, resp.Header.Get("Content-Range"), maxLength)
		}
		if err == nil && first != off {
			err = fmt.Errorf("it starts at byte %d, not at %d", first, off)
		}
		if err == nil && resp.ContentLength >= 0 && resp.ContentLength != last-first+1 {
			err = fmt.Errorf("Content-Length %d for a range of %d bytes", resp.ContentLength, last-first+1)
		}
		if err != nil {
			resp.Body.Close()
			return nil, -1, fmt.Errorf("%w: GET %s from %d: %v", ErrBadRange, rawURL, off, err)
		}
		res.Offset, res.Size = first, size
		b.limit = last - first + 1
	default:
		retryAfter = -1
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
		}
		// Drain a little so the connection can be reused, never much.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, retryAfter, &StatusError{URL: rawURL, StatusCode: resp.StatusCode}
	}
	b.rc = resp.Body
	return res, 0, nil
}

// parseContentRange parses "bytes FIRST-LAST/SIZE" (SIZE may be "*":
// returned as -1).
func parseContentRange(v string) (first, last, size int64, err error) {
	spec, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q is not a byte range", v)
	}
	rng, total, ok := strings.Cut(spec, "/")
	a, z, ok2 := strings.Cut(rng, "-")
	if !ok || !ok2 {
		return 0, 0, 0, fmt.Errorf("Content-Range %q does not parse", v)
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(z, 10, 64)
	size = -1
	var err3 error
	if total != "*" {
		size, err3 = strconv.ParseInt(total, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first || (size >= 0 && last >= size) {
		return 0, 0, 0, fmt.Errorf("Content-Range %q does not parse", v)
	}
	return first, last, size, nil
}

// isPermanent reports errors that a retry cannot fix.
func isPermanent(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	return errors.Is(err, ErrInsecureURL) || errors.As(err, &certErr) ||
		errors.As(err, &unknownCA) || errors.As(err, &hostErr)
}

// parseRetryAfter returns a Retry-After given in delta-seconds, or 0. The
// HTTP-date form is ignored: it would need a trusted clock.
func parseRetryAfter(v string) time.Duration {
	s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// body limits, watches and closes a response body. Reads must not be
// concurrent with each other (as for any io.Reader); Close may be called
// at any time.
type body struct {
	rc     io.ReadCloser
	url    string
	limit  int64 // maximum bytes delivered
	n      int64 // bytes delivered so far
	stall  time.Duration
	timer  *time.Timer
	ctx    context.Context
	cancel context.CancelCauseFunc
	rate   *RateLimiter // nil: no limit
	sleep  func(ctx context.Context, d time.Duration) error
	// minRate and window: see Config.MinRate; waited and got are the
	// time spent waiting in rc.Read and the bytes it returned in the
	// current window.
	minRate int64
	window  time.Duration
	waited  time.Duration
	got     int64

	closeOnce sync.Once
}

// fire is the stall timer's callback.
func (b *body) fire() { b.cancel(ErrStalled) }

// translate turns the cancellation caused by a stall into ErrStalled.
func (b *body) translate(err error) error {
	if errors.Is(context.Cause(b.ctx), ErrStalled) {
		return fmt.Errorf("%w: no data for %v: %v", ErrStalled, b.stall, err)
	}
	return err
}

// Read delivers at most limit bytes in total; the first byte beyond the
// limit turns into ErrTooLong. The stall timer runs only while Read waits,
// so a slow consumer is not mistaken for a stalled server. With a rate
// limit, Read asks for at most one burst and, after reading, waits until
// the bytes it got are paid for.
func (b *body) Read(p []byte) (int, error) {
	if b.n > b.limit {
		return 0, fmt.Errorf("%w: GET %s: more than %d bytes", ErrTooLong, b.url, b.limit)
	}
	if b.rate != nil && len(p) > b.rate.burst {
		p = p[:b.rate.burst]
	}
	// Ask for at most one byte past the limit: enough to detect excess.
	// (Written so that a limit near math.MaxInt64 cannot overflow.)
	if left := b.limit - b.n; left < int64(len(p)) {
		p = p[:left+1]
	}
	b.timer.Reset(b.stall)
	start := time.Now()
	n, err := b.rc.Read(p)
	b.timer.Stop()
	b.n += int64(n)
	if err == nil {
		err = b.pace(time.Since(start), n)
	}
	if b.n > b.limit {
		return n - int(b.n-b.limit), fmt.Errorf("%w: GET %s: more than %d bytes", ErrTooLong, b.url, b.limit)
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("fetch: GET %s: reading body: %w", b.url, b.translate(err))
	}
	if b.rate != nil && n > 0 {
		if d := b.rate.take(n); d > 0 {
			if serr := b.sleep(b.ctx, d); serr != nil && err == nil {
				err = fmt.Errorf("fetch: GET %s: rate limit: %w", b.url, serr)
			}
		}
	}
	return n, err
}

// pace adds one Read's wait and bytes to the current window and fails
// with ErrTooSlow when a whole window of waiting brought too little.
func (b *body) pace(waited time.Duration, n int) error {
	if b.minRate < 0 {
		return nil
	}
	b.waited += waited
	b.got += int64(n)
	if b.waited < b.window {
		return nil
	}
	want := int64(float64(b.minRate) * b.waited.Seconds())
	if b.got < want {
		return fmt.Errorf("%w: GET %s: %d bytes in %v of waiting for the server, want at least %d bytes/s", ErrTooSlow, b.url, b.got,
			b.waited.Round(time.Millisecond), b.minRate)
	}
	b.waited, b.got = 0, 0
	return nil
}

// Close releases the connection and stops the stall timer.
func (b *body) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.timer.Stop()
		err = b.rc.Close()
		b.cancel(nil)
	})
	return err
}
