package devauth

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
)

// RFC 9421 Appendix B.1.4, test-key-ed25519.
const (
	rfcEd25519Private = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----`
	rfcEd25519Public = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----`
)

// RFC 9421 Appendix B.2, the test request.
const rfcRequest = "POST /foo?param=Value&Pet=dog HTTP/1.1\r\n" +
	"Host: example.com\r\n" +
	"Date: Tue, 20 Apr 2021 02:07:55 GMT\r\n" +
	"Content-Type: application/json\r\n" +
	"Content-Digest: sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:\r\n" +
	"Content-Length: 18\r\n" +
	"\r\n" +
	`{"hello": "world"}`

// RFC 9421 Appendix B.2.6.
const (
	rfcB26Input     = `sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
	rfcB26Signature = `sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:`
	rfcB26Base      = `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
)

func rfcKeys(t *testing.T) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	b, _ := pem.Decode([]byte(rfcEd25519Private))
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	priv := k.(ed25519.PrivateKey)
	b, _ = pem.Decode([]byte(rfcEd25519Public))
	p, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub := p.(ed25519.PublicKey)
	if !pub.Equal(priv.Public()) {
		t.Fatal("RFC test private key does not match the RFC test public key")
	}
	return priv, pub
}

func rfcServerRequest(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(rfcRequest)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// parseMember parses a one-member Signature-Input and Signature pair the
// way Verify does.
func parseMember(t *testing.T, input, sig string) *signature {
	t.Helper()
	ins, err := parseDictionary(input)
	if err != nil || len(ins) != 1 || !ins[0].isList {
		t.Fatalf("Signature-Input %q: %v", input, err)
	}
	sigs, err := parseDictionary(sig)
	if err != nil || len(sigs) != 1 || sigs[0].item.kind != kindBytes {
		t.Fatalf("Signature %q: %v", sig, err)
	}
	return &signature{list: ins[0].list, params: ins[0].params, sig: sigs[0].item.bytes}
}

// The signature base construction, the @signature-params serialisation and
// Ed25519 reproduce RFC 9421 B.2.6 byte for byte, both ways.
func TestRFC9421VectorB26(t *testing.T) {
	priv, pub := rfcKeys(t)
	r := rfcServerRequest(t)
	s := parseMember(t, rfcB26Input, rfcB26Signature)
	var v Verifier
	base, err := v.signatureBase(nil, r, s)
	if err != nil {
		t.Fatal(err)
	}
	if string(base) != rfcB26Base {
		t.Fatalf("signature base:\n%s\nwant:\n%s", base, rfcB26Base)
	}
	if !ed25519.Verify(pub, base, s.sig) {
		t.Error("the RFC signature does not verify over the base")
	}
	got := "sig-b26=" + string(appendItem(nil, sfItem{kind: kindBytes, bytes: ed25519.Sign(priv, base)}))
	if got != rfcB26Signature {
		t.Errorf("signature %s, want %s", got, rfcB26Signature)
	}
	if got := "sig-b26=" + string(appendInnerList(nil, s.list, s.params)); got != rfcB26Input {
		t.Errorf("re-serialised Signature-Input %s, want %s", got, rfcB26Input)
	}
}

// The RFC's own signature is refused by the profile, not for its
// cryptography: it lacks the label, nonce, tag and covered digest.
func TestRFC9421VectorRefusedByProfile(t *testing.T) {
	_, pub := rfcKeys(t)
	r := rfcServerRequest(t)
	r.Header.Set(hdrSignatureInput, strings.Replace(rfcB26Input, "sig-b26", Label, 1))
	r.Header.Set(hdrSignature, strings.Replace(rfcB26Signature, "sig-b26", Label, 1))
	v := &Verifier{
		Keys:   keyMap{"test-key-ed25519": pub},
		Nonces: NewMemoryNonces(0),
		Clock:  clock.NewFake(time.Unix(1618884473, 0)),
	}
	_, err := v.Verify(t.Context(), r)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Verify = %v, want ErrMalformed", err)
	}
}

// RFC 9530 section 2 / Appendix B: the SHA-256 Content-Digest of the test body.
func TestContentDigestVector(t *testing.T) {
	sum := sha256.Sum256([]byte(`{"hello": "world"}`))
	if got, want := digestField(sum[:]), "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"; got != want {
		t.Errorf("Content-Digest %s, want %s", got, want)
	}
	r := rfcServerRequest(t)
	h := http.Header{}
	h.Set(hdrContentDigest, "sha-512=:"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 64))+":, "+digestField(sum[:]))
	got, err := parseDigest(h)
	if err != nil || !bytes.Equal(got, sum[:]) {
		t.Errorf("parseDigest with two algorithms = %x, %v", got, err)
	}
	if _, err := parseDigest(r.Header); !errors.Is(err, ErrMalformed) {
		t.Errorf("parseDigest of a sha-512-only field = %v, want ErrMalformed", err)
	}
}
