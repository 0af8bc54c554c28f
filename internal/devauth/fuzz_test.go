package devauth

import (
	"net/http"
	"testing"
)

// Hostile signature fields never panic Verify and never pass it.
func FuzzVerify(f *testing.F) {
	// A fixed nonce: the fuzzing workers compute the same genuine fields.
	fx := newFixture()
	req, _ := http.NewRequest(http.MethodGet, checkURL, nil)
	if err := Sign(req, fx.dev.id, fx.dev.priv, t0, "fuzz-0123456789abcdef"); err != nil {
		f.Fatal(err)
	}
	genuine := req.Header
	gIn, gSig, gDigest := genuine.Get(hdrSignatureInput), genuine.Get(hdrSignature), genuine.Get(hdrContentDigest)
	f.Add(gIn, gSig, gDigest)
	f.Add(gIn, gSig, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
	f.Add(rfcB26Input, rfcB26Signature, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
	f.Add(`uptrust=("@method";x=?1 "a");created=-1`, `uptrust=:=:`, `sha-256=("x")`)
	f.Fuzz(func(t *testing.T, input, sig, digest string) {
		fx := newFixture()
		r := fx.signed(t, fx.dev, http.MethodGet, checkURL, nil)
		r.Header.Set(hdrSignatureInput, input)
		r.Header.Set(hdrSignature, sig)
		r.Header.Set(hdrContentDigest, digest)
		_, err := fx.v.Verify(t.Context(), r)
		// Only the genuine fields pass (on a fresh nonce store), spelled
		// as signed or in another valid serialisation of the same values.
		if err == nil && !(sig == gSig && digest == gDigest) {
			t.Fatalf("Verify accepted Signature-Input %q Signature %q Content-Digest %q", input, sig, digest)
		}
	})
}

// Whatever parses re-serialises, as an inner list, to something that
// parses to the same.
func FuzzParseDictionary(f *testing.F) {
	f.Add(rfcB26Input)
	f.Add(`a=("x" "y\"z";p);q=1, b=:AQI=:, c, d=-15;e=?0`)
	f.Fuzz(func(t *testing.T, field string) {
		ms, err := parseDictionary(field)
		if err != nil {
			return
		}
		for _, m := range ms {
			if !m.isList {
				continue
			}
			out := "k=" + string(appendInnerList(nil, m.list, m.params))
			again, err := parseDictionary(out)
			if err != nil || len(again) != 1 {
				t.Fatalf("%q re-serialised as %q: %v", field, out, err)
			}
			if got := "k=" + string(appendInnerList(nil, again[0].list, again[0].params)); got != out {
				t.Fatalf("%q: %q then %q", field, out, got)
			}
		}
	})
}
