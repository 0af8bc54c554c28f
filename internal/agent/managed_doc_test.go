package agent

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/devauth"
)

// TestDeviceProtocolDocExample keeps the signed enrolment example of
// docs/device-protocol.md real: the same key, time, nonce and body sign to
// the headers the document shows.
func TestDeviceProtocolDocExample(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "docs", "device-protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	pub := key.Public().(ed25519.PublicKey)
	body := `{"product":"thermostat","public_key":"` + base64.StdEncoding.EncodeToString(pub) +
		`","token":"enrol-2026-q4","inventory":{"version":"1.0.0","hardware":"rev-a"}}`
	req, err := http.NewRequest(http.MethodPost, "https://updates.example.com"+enrollPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := devauth.Sign(req, devauth.KeyID(pub), key, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), "3q2-7wAAAAAAAAAAAAAAAA"); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"Content-Digest: " + req.Header.Get("Content-Digest"),
		"Signature-Input: " + req.Header.Get("Signature-Input"), "Signature: " + req.Header.Get("Signature"), body} {
		if !bytes.Contains(doc, []byte(line+"\n")) {
			t.Errorf("docs/device-protocol.md lacks the line\n%s", line)
		}
	}
}
