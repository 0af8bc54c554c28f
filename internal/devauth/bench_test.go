package devauth

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// benchRequests returns n server-side requests signed by d, each with its
// own nonce, built before the timer starts: the benchmarks measure Verify
// only.
func benchRequests(b *testing.B, f *fixture, method, target string, body []byte, n int) []*http.Request {
	b.Helper()
	u, err := url.Parse(target)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]*http.Request, n)
	for i := range out {
		req := clientRequest(b, f.dev, method, target, body, t0)
		r := &http.Request{Method: method, URL: u, Host: u.Host, Header: req.Header,
			Body: http.NoBody, ContentLength: int64(len(body)), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		if len(body) > 0 {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		out[i] = r
	}
	return out
}

func benchVerify(b *testing.B, method string, body []byte) {
	f := newFixture()
	f.v.Nonces = NewMemoryNonces(0)
	reqs := benchRequests(b, f, method, checkURL, body, b.N)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.v.Verify(ctx, reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// The update check: a GET without a body.
func BenchmarkVerifyGet(b *testing.B) { benchVerify(b, http.MethodGet, nil) }

// A report: a POST with a 1 KiB body.
func BenchmarkVerifyPost1K(b *testing.B) { benchVerify(b, http.MethodPost, make([]byte, 1024)) }

// The update check on all cores, as the server runs it.
func BenchmarkVerifyGetParallel(b *testing.B) {
	f := newFixture()
	f.v.Nonces = NewMemoryNonces(0)
	reqs := benchRequests(b, f, http.MethodGet, checkURL, nil, b.N)
	var next chan int = make(chan int, len(reqs))
	for i := range reqs {
		next <- i
	}
	close(next)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.v.Verify(ctx, reqs[<-next]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// Sign on the device, for comparison.
func BenchmarkSignGet(b *testing.B) {
	d := newDevice("a")
	nonce := NewNonce()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest(http.MethodGet, checkURL, nil)
		if err := Sign(req, d.id, d.priv, t0, nonce); err != nil {
			b.Fatal(err)
		}
	}
}

// The floor: Ed25519 verification alone, over a signature base of the
// profile's size.
func BenchmarkEd25519Verify(b *testing.B) {
	d := newDevice("a")
	msg := bytes.Repeat([]byte("x"), 420)
	sig := ed25519.Sign(d.priv, msg)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !ed25519.Verify(d.pub, msg, sig) {
			b.Fatal("no")
		}
	}
}
