package api

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/strictjson"
)

// TokenFile is the format of the file given to uptrust serve
// --admin-token-file: tokens stored only as the SHA-256 of the secret.
//
//	{"tokens": [{"name": "ci", "role": "operator",
//	  "sha256": "<hex of sha256(token)>", "expires": "2027-03-01T00:00:00Z"}]}
//
// A token is refused once its expiry has passed or when revoked is true.
type TokenFile struct {
	Tokens []TokenEntry `json:"tokens"`
}

// TokenEntry is one token of a TokenFile.
type TokenEntry struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	SHA256  string    `json:"sha256"`
	Expires time.Time `json:"expires"`
	Revoked bool      `json:"revoked,omitempty" zero:"ok"`
}

// tokenPattern is what a presented token may look like; anything else is
// malformed and refused before hashing.
var tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_.~+/=-]{16,256}$`)

// NewToken returns a random token ("upt_" and 43 base64url characters) and
// the hex SHA-256 to store for it.
func NewToken() (token, sum string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = "upt_" + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token)
}

// HashToken returns the hex SHA-256 of a token, as a TokenFile stores it.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// FileAuthenticator authenticates tokens listed in a TokenFile. The file is
// read again when its size or modification time changes, so revoking a
// token takes effect without a restart.
type FileAuthenticator struct {
	path  string
	clock clock.Clock

	mu      sync.Mutex
	mod     time.Time
	size    int64
	entries map[string]TokenEntry // by sha256
}

// NewFileAuthenticator reads path and checks it.
func NewFileAuthenticator(path string, c clock.Clock) (*FileAuthenticator, error) {
	if c == nil {
		c = clock.Real{}
	}
	a := &FileAuthenticator{path: path, clock: c}
	if err := a.load(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *FileAuthenticator) load() error {
	st, err := os.Stat(a.path)
	if err != nil {
		return fmt.Errorf("api: token file: %w", err)
	}
	if st.ModTime().Equal(a.mod) && st.Size() == a.size && a.entries != nil {
		return nil
	}
	b, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("api: token file: %w", err)
	}
	var f TokenFile
	if err := strictjson.Decode(a.path, b, &f); err != nil {
		return fmt.Errorf("api: token file: %w", err)
	}
	// strictjson checks objects, not objects in arrays: the tokens are
	// checked for unknown fields here.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("api: token file %s: %w", a.path, err)
	}
	entries := map[string]TokenEntry{}
	for i, e := range f.Tokens {
		if _, err := ParseRole(e.Role); err != nil {
			return fmt.Errorf("api: token file %s: tokens[%d] (%s): %w", a.path, i, e.Name, err)
		}
		if s, err := hex.DecodeString(e.SHA256); err != nil || len(s) != sha256.Size {
			return fmt.Errorf("api: token file %s: tokens[%d] (%s): sha256 must be 64 hex digits", a.path, i, e.Name)
		}
		if _, dup := entries[e.SHA256]; dup {
			return fmt.Errorf("api: token file %s: tokens[%d] (%s): the same token is listed twice", a.path, i, e.Name)
		}
		entries[e.SHA256] = e
	}
	a.mod, a.size, a.entries = st.ModTime(), st.Size(), entries
	return nil
}

// Authenticate implements Authenticator.
func (a *FileAuthenticator) Authenticate(ctx context.Context, token string) (Principal, error) {
	if !tokenPattern.MatchString(token) {
		return Principal{}, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	a.mu.Lock()
	err := a.load()
	entries := a.entries
	a.mu.Unlock()
	if err != nil && entries == nil {
		return Principal{}, err
	}
	sum := HashToken(token)
	e, ok := entries[sum]
	if !ok || subtle.ConstantTimeCompare([]byte(e.SHA256), []byte(sum)) != 1 {
		return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	if e.Revoked {
		return Principal{}, fmt.Errorf("%w: token %s is revoked", ErrUnauthenticated, e.Name)
	}
	if !a.clock.Now().Before(e.Expires) {
		return Principal{}, fmt.Errorf("%w: token %s expired at %s", ErrUnauthenticated, e.Name, e.Expires.UTC().Format(time.RFC3339))
	}
	return Principal{Name: e.Name, Role: Role(e.Role)}, nil
}

// Tokens implements TokenLister: the tokens of the file, ordered by name,
// without their hashes.
func (a *FileAuthenticator) Tokens(ctx context.Context) ([]TokenInfo, error) {
	a.mu.Lock()
	err := a.load()
	entries := a.entries
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]TokenInfo, 0, len(entries))
	for _, e := range entries {
		out = append(out, TokenInfo{Name: e.Name, Role: Role(e.Role), Expires: e.Expires.UTC(), Revoked: e.Revoked})
	}
	slices.SortFunc(out, func(x, y TokenInfo) int { return cmp.Or(cmp.Compare(x.Name, y.Name), x.Expires.Compare(y.Expires)) })
	return out, nil
}
