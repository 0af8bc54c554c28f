package devauth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
)

// keyMap is a KeyStore over a map of keyid to public key.
type keyMap map[string]ed25519.PublicKey

func (m keyMap) DeviceKey(_ context.Context, id string) (ed25519.PublicKey, error) {
	if k, ok := m[id]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("test key store: %w", ErrUnknownKey)
}

type device struct {
	id   string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func newDevice(name string) device {
	seed := sha256.Sum256([]byte("devauth test device " + name))
	priv := ed25519.NewKeyFromSeed(seed[:])
	pub := priv.Public().(ed25519.PublicKey)
	return device{id: KeyID(pub), priv: priv, pub: pub}
}

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

const checkURL = "http://updates.example.com/api/device/v1/check?hardware=board-a&version=1.2.0"

type fixture struct {
	clk    *clock.Fake
	nonces *MemoryNonces
	v      *Verifier
	dev    device // enrolled
	other  device // enrolled too
	rogue  device // not enrolled
}

func newFixture() *fixture {
	f := &fixture{clk: clock.NewFake(t0), nonces: NewMemoryNonces(1024),
		dev: newDevice("a"), other: newDevice("b"), rogue: newDevice("rogue")}
	f.v = &Verifier{
		Keys:   keyMap{f.dev.id: f.dev.pub, f.other.id: f.other.pub},
		Nonces: f.nonces,
		Clock:  f.clk,
	}
	return f
}

// clientRequest returns a request as the agent sends it, signed by d at at.
func clientRequest(t testing.TB, d device, method, url string, body []byte, at time.Time) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if err := Sign(req, d.id, d.priv, at, NewNonce()); err != nil {
		t.Fatal(err)
	}
	return req
}

// wire returns req as it goes over the wire.
func wire(t testing.TB, req *http.Request) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := req.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// serverRequest parses wire bytes as the server does.
func serverRequest(t testing.TB, raw []byte) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// signed returns a server-side request signed by d at the fixture's time.
func (f *fixture) signed(t testing.TB, d device, method, url string, body []byte) *http.Request {
	t.Helper()
	return serverRequest(t, wire(t, clientRequest(t, d, method, url, body, f.clk.Now())))
}

func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("Verify = %v, want %v", err, kind)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Verify = %T %v, want an *Error", err, err)
	}
}

func TestRoundTrip(t *testing.T) {
	f := newFixture()
	body := []byte(`{"outcome":"succeeded","release":"1.3.0"}`)
	for _, tc := range []struct {
		method, url string
		body        []byte
	}{
		{http.MethodGet, checkURL, nil},
		{http.MethodGet, "http://updates.example.com", nil}, // empty path signs "/"
		{http.MethodPost, "http://updates.example.com/api/device/v1/reports", body},
		{http.MethodPut, "http://Updates.Example.com:80/api/device/v1/inventory/%C3%A9t%C3%A9", []byte{}},
	} {
		r := f.signed(t, f.dev, tc.method, tc.url, tc.body)
		nonce := r.Header.Get(hdrSignatureInput)
		res, err := f.v.Verify(t.Context(), r)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.url, err)
		}
		if res.KeyID != f.dev.id || !res.Created.Equal(t0) || !strings.Contains(nonce, `nonce="`+res.Nonce+`"`) {
			t.Errorf("%s %s: result %+v", tc.method, tc.url, res)
		}
		got, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(got, tc.body) {
			t.Errorf("%s %s: handler reads body %q, %v; want %q", tc.method, tc.url, got, err, tc.body)
		}
	}
}

// The signed request goes through net/http both ways, as the agent and the
// server will use it; the agent's body is sent with its GetBody intact.
func TestOverHTTP(t *testing.T) {
	f := newFixture()
	url := verifyingServer(t, f.v)
	body := []byte(`{"fields":{"hardware":"board-a"}}`)
	req := clientRequest(t, f.dev, http.MethodPost, url+"/api/device/v1/inventory?x=1", body, t0)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != f.dev.id+" "+string(body) {
		t.Fatalf("status %d, body %q", resp.StatusCode, got)
	}
}

// Changing any covered part of a signed request breaks it.
func TestTampering(t *testing.T) {
	body := []byte(`{"outcome":"succeeded"}`)
	evil := []byte(`{"outcome":"failed!!!"}`)
	evilSum := sha256.Sum256(evil)
	for _, tc := range []struct {
		name   string
		tamper func(f *fixture, r *http.Request)
		want   error
	}{
		{"method", func(_ *fixture, r *http.Request) { r.Method = http.MethodPut }, ErrBadSignature},
		{"path", func(_ *fixture, r *http.Request) { r.URL.Path = "/api/device/v1/other"; r.URL.RawPath = "" }, ErrBadSignature},
		{"query", func(_ *fixture, r *http.Request) { r.URL.RawQuery = "x=2" }, ErrBadSignature},
		{"query added", func(_ *fixture, r *http.Request) { r.URL.RawQuery = "x=1&y=2" }, ErrBadSignature},
		{"authority", func(_ *fixture, r *http.Request) { r.Host = "staging.example.com" }, ErrBadSignature},
		{"body", func(_ *fixture, r *http.Request) { r.Body = io.NopCloser(bytes.NewReader(evil)) }, ErrDigestMismatch},
		{"body and digest", func(_ *fixture, r *http.Request) {
			r.Body = io.NopCloser(bytes.NewReader(evil))
			r.Header.Set(hdrContentDigest, digestField(evilSum[:]))
		}, ErrBadSignature},
		{"created", func(_ *fixture, r *http.Request) {
			editInput(r, fmt.Sprintf("created=%d", t0.Unix()), fmt.Sprintf("created=%d", t0.Unix()-1))
		}, ErrBadSignature},
		{"keyid of another enrolled device", func(f *fixture, r *http.Request) {
			editInput(r, `keyid="`+f.dev.id, `keyid="`+f.other.id)
		}, ErrBadSignature},
		{"nonce", func(_ *fixture, r *http.Request) { editInput(r, `nonce="`, `nonce="AAAA`) }, ErrBadSignature},
		{"signature", func(_ *fixture, r *http.Request) {
			s := []byte(r.Header.Get(hdrSignature))
			i := len(Label) + 2
			if s[i] == 'A' { // another base64 character: still 64 bytes
				s[i] = 'B'
			} else {
				s[i] = 'A'
			}
			r.Header.Set(hdrSignature, string(s))
		}, ErrBadSignature},
		{"component list", func(_ *fixture, r *http.Request) { editInput(r, `"@query" `, ``) }, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			r := f.signed(t, f.dev, http.MethodPost, "http://updates.example.com/api/device/v1/reports?x=1", body)
			tc.tamper(f, r)
			_, err := f.v.Verify(t.Context(), r)
			wantKind(t, err, tc.want)
			if f.nonces.Len() != 0 {
				t.Errorf("a refused request left %d nonces", f.nonces.Len())
			}
		})
	}
}

// editInput replaces the first old in Signature-Input by new.
func editInput(r *http.Request, old, new string) {
	in := r.Header.Get(hdrSignatureInput)
	r.Header.Set(hdrSignatureInput, strings.Replace(in, old, new, 1))
}

// A key that is not the device's cannot sign for it; a key that is not
// enrolled is unknown.
func TestKeys(t *testing.T) {
	f := newFixture()
	impostor := f.rogue
	impostor.id = f.dev.id
	_, err := f.v.Verify(t.Context(), f.signed(t, impostor, http.MethodGet, checkURL, nil))
	wantKind(t, err, ErrBadSignature)

	_, err = f.v.Verify(t.Context(), f.signed(t, f.rogue, http.MethodGet, checkURL, nil))
	wantKind(t, err, ErrUnknownKey)
	if status, code := Problem(err); status != http.StatusUnauthorized || code != CodeSignatureInvalid {
		t.Errorf("Problem(unknown key) = %d %q", status, code)
	}

	broken := errors.New("database unreachable")
	f.v.Keys = keyStoreFunc(func(context.Context, string) (ed25519.PublicKey, error) { return nil, broken })
	_, err = f.v.Verify(t.Context(), f.signed(t, f.dev, http.MethodGet, checkURL, nil))
	var e *Error
	if !errors.Is(err, broken) || errors.As(err, &e) {
		t.Fatalf("Verify with a failing key store = %v, want the store's error, not a refusal", err)
	}
	if status, _ := Problem(err); status != http.StatusInternalServerError {
		t.Errorf("Problem(store failure) = %d, want 500", status)
	}
}

type keyStoreFunc func(context.Context, string) (ed25519.PublicKey, error)

func (fn keyStoreFunc) DeviceKey(ctx context.Context, id string) (ed25519.PublicKey, error) {
	return fn(ctx, id)
}

func TestReplay(t *testing.T) {
	f := newFixture()
	raw := wire(t, clientRequest(t, f.dev, http.MethodPost, "http://updates.example.com/api/device/v1/reports", []byte(`{"a":1}`), t0))

	// A tampered copy that arrives first does not burn the nonce.
	tampered := serverRequest(t, raw)
	tampered.Body = io.NopCloser(strings.NewReader(`{"a":2}`))
	_, err := f.v.Verify(t.Context(), tampered)
	wantKind(t, err, ErrDigestMismatch)

	if _, err := f.v.Verify(t.Context(), serverRequest(t, raw)); err != nil {
		t.Fatalf("genuine request: %v", err)
	}
	f.clk.Advance(DefaultSkew)
	_, err = f.v.Verify(t.Context(), serverRequest(t, raw))
	wantKind(t, err, ErrReplayed)
	if status, code := Problem(err); status != http.StatusUnauthorized || code != CodeReplayed {
		t.Errorf("Problem(replayed) = %d %q", status, code)
	}
	// Past the window the copy is too old, whatever the nonce store holds.
	f.clk.Advance(time.Second)
	_, err = f.v.Verify(t.Context(), serverRequest(t, raw))
	wantKind(t, err, ErrTooOld)

	// One nonce under two keys is two nonces.
	f.clk.Set(t0)
	req := clientRequest(t, f.dev, http.MethodGet, checkURL, nil, t0)
	in := req.Header.Get(hdrSignatureInput)
	nonce := in[strings.Index(in, `nonce="`)+7:]
	nonce = nonce[:strings.IndexByte(nonce, '"')]
	for _, d := range []device{f.dev, f.other} {
		req, _ := http.NewRequest(http.MethodGet, checkURL, nil)
		if err := Sign(req, d.id, d.priv, t0, nonce); err != nil {
			t.Fatal(err)
		}
		if _, err := f.v.Verify(t.Context(), serverRequest(t, wire(t, req))); err != nil {
			t.Errorf("nonce %s under key %s: %v", nonce, d.id, err)
		}
	}
}

func TestWindow(t *testing.T) {
	for _, tc := range []struct {
		name     string
		signedAt time.Time
		want     error
	}{
		{"now", t0, nil},
		{"skew ago", t0.Add(-DefaultSkew), nil},
		{"skew ahead", t0.Add(DefaultSkew), nil},
		{"too old", t0.Add(-DefaultSkew - time.Second), ErrTooOld},
		{"too new", t0.Add(DefaultSkew + time.Second), ErrTooNew},
		{"device clock at boot", time.Unix(0, 0).Add(time.Second), ErrTooOld},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			r := serverRequest(t, wire(t, clientRequest(t, f.dev, http.MethodGet, checkURL, nil, tc.signedAt)))
			_, err := f.v.Verify(t.Context(), r)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantKind(t, err, tc.want)
			if status, code := Problem(err); status != http.StatusUnauthorized || code != CodeClockSkew {
				t.Errorf("Problem = %d %q", status, code)
			}
		})
	}
	f := newFixture()
	f.v.Skew = time.Minute
	r := serverRequest(t, wire(t, clientRequest(t, f.dev, http.MethodGet, checkURL, nil, t0.Add(-2*time.Minute))))
	_, err := f.v.Verify(t.Context(), r)
	wantKind(t, err, ErrTooOld)
}

// countingReader counts what is read from it; it has n bytes.
type countingReader struct {
	n, read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), c.n-c.read)
	clear(p[:k])
	c.read += k
	return int(k), nil
}

func (c *countingReader) Close() error { return nil }

func TestOversizedBody(t *testing.T) {
	f := newFixture()
	f.v.MaxBody = 1 << 10
	url := "http://updates.example.com/api/device/v1/reports"

	// Declared too long: refused before reading a byte.
	r := f.signed(t, f.dev, http.MethodPost, url, make([]byte, 1<<10+1))
	cr := &countingReader{n: 1<<10 + 1}
	r.Body = cr
	_, err := f.v.Verify(t.Context(), r)
	wantKind(t, err, ErrBodyTooLarge)
	if cr.read != 0 {
		t.Errorf("read %d bytes of a body declared too long", cr.read)
	}
	if status, code := Problem(err); status != http.StatusRequestEntityTooLarge || code != CodeBodyTooLarge {
		t.Errorf("Problem = %d %q", status, code)
	}

	// Chunked, no length: read up to the limit and one byte more.
	r = f.signed(t, f.dev, http.MethodPost, url, make([]byte, 100<<10))
	cr = &countingReader{n: 100 << 10}
	r.Body, r.ContentLength = cr, -1
	_, err = f.v.Verify(t.Context(), r)
	wantKind(t, err, ErrBodyTooLarge)
	if cr.read != 1<<10+1 {
		t.Errorf("read %d bytes of a 100 KiB body, want the limit + 1 = %d", cr.read, 1<<10+1)
	}

	// Exactly the limit passes.
	r = f.signed(t, f.dev, http.MethodPost, url, make([]byte, 1<<10))
	if _, err := f.v.Verify(t.Context(), r); err != nil {
		t.Fatalf("body at the limit: %v", err)
	}
}

func TestSignRefuses(t *testing.T) {
	d := newDevice("a")
	for _, tc := range []struct {
		name  string
		keyID string
		key   ed25519.PrivateKey
		nonce string
	}{
		{"short nonce", d.id, d.priv, "abc"},
		{"nonce alphabet", d.id, d.priv, "abcdefghijklmnop+/"},
		{"empty keyid", "", d.priv, NewNonce()},
		{"keyid with a line break", "a\nb", d.priv, NewNonce()},
		{"short key", d.id, d.priv[:32], NewNonce()},
	} {
		req, _ := http.NewRequest(http.MethodGet, checkURL, nil)
		if err := Sign(req, tc.keyID, tc.key, t0, tc.nonce); err == nil {
			t.Errorf("%s: Sign accepted it", tc.name)
		} else if !strings.HasPrefix(err.Error(), "devauth: sign: ") {
			t.Errorf("%s: error %q does not say where it comes from", tc.name, err)
		}
	}
}

func TestNewNonce(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n := NewNonce()
		if !validNonce(n) || len(n) != 22 || seen[n] {
			t.Fatalf("NewNonce = %q (seen before: %v)", n, seen[n])
		}
		seen[n] = true
	}
	if id := KeyID(newDevice("a").pub); len(id) != 43 || !validKeyID(id) {
		t.Errorf("KeyID = %q", id)
	}
}
