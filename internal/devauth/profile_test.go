package devauth

import (
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// resign re-signs server request r with priv after edit changes the
// parsed Signature-Input member, using the verifier's own base
// construction (anchored by TestRFC9421VectorB26).
func resign(t *testing.T, r *http.Request, priv ed25519.PrivateKey, edit func(s *signature)) {
	t.Helper()
	s, err := parseSignature(r.Header)
	if err != nil {
		t.Fatal(err)
	}
	edit(s)
	var v Verifier
	base, err := v.signatureBase(nil, r, s)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set(hdrSignatureInput, Label+"="+string(appendInnerList(nil, s.list, s.params)))
	r.Header.Set(hdrSignature, Label+"="+string(appendItem(nil, sfItem{kind: kindBytes, bytes: ed25519.Sign(priv, base)})))
}

// The verifier accepts what the profile allows beyond Sign's output: extra
// covered header fields, another order, a future expires, other signatures.
func TestProfileAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(f *fixture, r *http.Request)
	}{
		{"extra covered header", func(f *fixture, r *http.Request) {
			r.Header.Set("Content-Type", "application/json")
			resign(t, r, f.dev.priv, func(s *signature) {
				s.list = append(s.list, sfInner{item: sfItem{kind: kindString, str: "content-type"}})
			})
		}},
		{"components in another order", func(f *fixture, r *http.Request) {
			resign(t, r, f.dev.priv, func(s *signature) {
				s.list[0], s.list[4] = s.list[4], s.list[0]
			})
		}},
		{"expires ahead", func(f *fixture, r *http.Request) {
			resign(t, r, f.dev.priv, func(s *signature) {
				s.params = append(s.params, sfParam{key: "expires", val: sfItem{kind: kindInteger, num: t0.Unix() + 60}})
			})
		}},
		{"another signature beside", func(_ *fixture, r *http.Request) {
			r.Header.Add(hdrSignatureInput, `proxy=("@method");created=1`)
			r.Header.Add(hdrSignature, `proxy=:AAAA:`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			r := f.signed(t, f.dev, http.MethodGet, checkURL, nil)
			tc.edit(f, r)
			if _, err := f.v.Verify(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestProfileRefuses(t *testing.T) {
	input := func(old, new string) func(*fixture, *http.Request) {
		return func(_ *fixture, r *http.Request) { editInput(r, old, new) }
	}
	param := func(p sfParam) func(*fixture, *http.Request) {
		return func(f *fixture, r *http.Request) {
			resign(t, r, f.dev.priv, func(s *signature) {
				for i := range s.params {
					if s.params[i].key == p.key {
						s.params[i] = p
						return
					}
				}
				s.params = append(s.params, p)
			})
		}
	}
	dropParam := func(key string) func(*fixture, *http.Request) {
		return func(f *fixture, r *http.Request) {
			resign(t, r, f.dev.priv, func(s *signature) {
				for i := range s.params {
					if s.params[i].key == key {
						s.params = append(s.params[:i], s.params[i+1:]...)
						return
					}
				}
			})
		}
	}
	str := func(v string) sfItem { return sfItem{kind: kindString, str: v} }
	for _, tc := range []struct {
		name string
		edit func(f *fixture, r *http.Request)
		want error
	}{
		{"no signature at all", func(_ *fixture, r *http.Request) {
			r.Header.Del(hdrSignatureInput)
			r.Header.Del(hdrSignature)
		}, ErrMissingSignature},
		{"only another label", func(_ *fixture, r *http.Request) {
			r.Header.Set(hdrSignatureInput, strings.Replace(r.Header.Get(hdrSignatureInput), Label+"=", "other=", 1))
			r.Header.Set(hdrSignature, strings.Replace(r.Header.Get(hdrSignature), Label+"=", "other=", 1))
		}, ErrMissingSignature},
		{"Signature without its input", func(_ *fixture, r *http.Request) { r.Header.Del(hdrSignatureInput) }, ErrMalformed},
		{"input without its Signature", func(_ *fixture, r *http.Request) { r.Header.Del(hdrSignature) }, ErrMalformed},
		{"unterminated inner list", func(_ *fixture, r *http.Request) { r.Header.Set(hdrSignatureInput, Label+`=("@method"`) }, ErrMalformed},
		{"input not a list", func(_ *fixture, r *http.Request) { r.Header.Set(hdrSignatureInput, Label+`="@method"`) }, ErrMalformed},
		{"signature not bytes", func(_ *fixture, r *http.Request) { r.Header.Set(hdrSignature, Label+`="abc"`) }, ErrMalformed},
		{"signature too short", func(_ *fixture, r *http.Request) { r.Header.Set(hdrSignature, Label+`=:AAAA:`) }, ErrMalformed},
		{"signature not base64", func(_ *fixture, r *http.Request) { r.Header.Set(hdrSignature, Label+`=:A*A=:`) }, ErrMalformed},
		{"field too long", func(_ *fixture, r *http.Request) {
			r.Header.Add(hdrSignatureInput, "x="+strings.Repeat("a", maxFieldLen))
		}, ErrMalformed},
		{"@query not covered", input(`"@query" `, ``), ErrMalformed},
		{"content-digest not covered", input(` "content-digest"`, ``), ErrMalformed},
		{"@authority not covered", input(`"@authority" `, ``), ErrMalformed},
		{"unsupported derived component", input(`"@query"`, `"@query" "@target-uri"`), ErrMalformed},
		{"component with a parameter", input(`"content-digest"`, `"content-digest";sf`), ErrMalformed},
		{"component twice", input(`"@query"`, `"@query" "@query"`), ErrMalformed},
		{"component not a string", input(`"@query"`, `"@query" date`), ErrMalformed},
		{"upper-case field name", input(`"@query"`, `"@query" "Date"`), ErrMalformed},
		{"covered field absent", input(`"@query"`, `"@query" "x-absent"`), ErrMalformed},
		{"unknown parameter", input(`;tag=`, `;foo=1;tag=`), ErrMalformed},
		{"created a decimal", input(`;created=`, `;created=1.5;x=`), ErrMalformed},
		{"created a string", param(sfParam{key: "created", val: str("1700000000")}), ErrMalformed},
		{"no created", dropParam("created"), ErrMalformed},
		{"no keyid", dropParam("keyid"), ErrMalformed},
		{"no nonce", dropParam("nonce"), ErrMalformed},
		{"no tag", dropParam("tag"), ErrMalformed},
		{"short nonce", param(sfParam{key: "nonce", val: str("abc")}), ErrMalformed},
		{"other alg", param(sfParam{key: "alg", val: str("rsa-pss-sha512")}), ErrMalformed},
		{"other tag", param(sfParam{key: "tag", val: str("uptrust-operator")}), ErrMalformed},
		{"expires before created", param(sfParam{key: "expires", val: sfItem{kind: kindInteger, num: t0.Unix() - 1}}), ErrMalformed},
		{"expired", func(f *fixture, r *http.Request) {
			param(sfParam{key: "expires", val: sfItem{kind: kindInteger, num: t0.Unix()}})(f, r)
			f.clk.Advance(2e9)
		}, ErrTooOld},
		{"no Content-Digest", func(_ *fixture, r *http.Request) { r.Header.Del(hdrContentDigest) }, ErrMalformed},
		{"Content-Digest without sha-256", func(_ *fixture, r *http.Request) {
			r.Header.Set(hdrContentDigest, "sha-512=:"+strings.Repeat("A", 86)+"==:")
		}, ErrMalformed},
		{"Content-Digest of the wrong length", func(_ *fixture, r *http.Request) {
			r.Header.Set(hdrContentDigest, "sha-256=:AAAA:")
		}, ErrMalformed},
		{"Content-Digest a string", func(_ *fixture, r *http.Request) {
			r.Header.Set(hdrContentDigest, `sha-256="x"`)
		}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			r := f.signed(t, f.dev, http.MethodGet, checkURL, nil)
			tc.edit(f, r)
			_, err := f.v.Verify(t.Context(), r)
			wantKind(t, err, tc.want)
		})
	}
}

func TestProblem(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{refuse(ErrMissingSignature, ""), 401, CodeSignatureRequired},
		{refuse(ErrMalformed, "x"), 401, CodeSignatureInvalid},
		{refuse(ErrUnknownKey, "x"), 401, CodeSignatureInvalid},
		{refuse(ErrBadSignature, "x"), 401, CodeSignatureInvalid},
		{refuse(ErrDigestMismatch, "x"), 401, CodeSignatureInvalid},
		{refuse(ErrTooOld, "x"), 401, CodeClockSkew},
		{refuse(ErrTooNew, "x"), 401, CodeClockSkew},
		{refuse(ErrReplayed, "x"), 401, CodeReplayed},
		{fmt.Errorf("shared store: %w", ErrReplayed), 401, CodeReplayed},
		{refuse(ErrBodyTooLarge, "x"), 413, CodeBodyTooLarge},
		{refuse(ErrNoncesFull, "x"), 503, CodeUnavailable},
		{fmt.Errorf("devauth: key store: %w", fmt.Errorf("boom")), 500, ""},
	} {
		status, code := Problem(tc.err)
		if status != tc.status || code != tc.code {
			t.Errorf("Problem(%v) = %d %q, want %d %q", tc.err, status, code, tc.status, tc.code)
		}
	}
	if got := refuse(ErrBadSignature, `keyid "k"`).Error(); got != `devauth: bad signature: keyid "k"` {
		t.Errorf("Error() = %q", got)
	}
}
