package managed

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// jsonBody answers 415 unsupported-media-type and returns false unless r
// says its body is application/json (parameters such as charset=utf-8
// allowed). It reads nothing, so a refused request consumes no nonce.
func jsonBody(w http.ResponseWriter, r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil && mt == "application/json" {
		return true
	}
	problem(w, http.StatusUnsupportedMediaType, "unsupported-media-type",
		fmt.Sprintf("Content-Type %q: send application/json", r.Header.Get("Content-Type")), nil)
	return false
}

// decodeStrict decodes exactly one JSON value from rd into v: unknown
// fields and anything after the value (but white space) are errors.
func decodeStrict(rd io.Reader, v any) error {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}
