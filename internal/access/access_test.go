package access

import (
	"errors"
	"strings"
	"testing"
)

func TestAllows(t *testing.T) {
	all := []Permission{Read, ReadAudit, Push, Products, Rollouts, Tokens, Settings, ReadDevices, Devices}
	want := map[Role]string{
		Admin:          "read audit.read tokens settings devices.read",
		ReleaseManager: "read push products",
		Operator:       "read rollouts devices.read devices",
		Auditor:        "read audit.read devices.read",
		"root":         "",
	}
	for r, w := range want {
		var got []string
		for _, p := range all {
			if r.Allows(p) {
				got = append(got, string(p))
			}
		}
		if g := strings.Join(got, " "); g != w {
			t.Errorf("%s allows %q, want %q", r, g, w)
		}
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range Roles {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%s) = %v, %v", r, got, err)
		}
	}
	if _, err := ParseRole("superuser"); err == nil || !strings.Contains(err.Error(), "admin, release-manager, operator, auditor") {
		t.Errorf("ParseRole(superuser) = %v, want an error listing the roles", err)
	}
}

func TestTokenRoundTrip(t *testing.T) {
	text, id, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	gotID, secret, err := ParseToken(text)
	if err != nil || gotID != id {
		t.Fatalf("ParseToken(%s) = %s, %v; want id %s", text, gotID, err, id)
	}
	if !SecretMatches(secret, hash) {
		t.Error("secret does not match its own hash")
	}
	secret[0] ^= 1
	if SecretMatches(secret, hash) {
		t.Error("changed secret matches")
	}
	text2, id2, _, _ := NewToken()
	if text2 == text || id2 == id {
		t.Error("two tokens are equal")
	}
}

func TestParseTokenMalformed(t *testing.T) {
	good, _, _, _ := NewToken()
	for _, bad := range []string{
		"",
		"Bearer " + good,
		strings.TrimPrefix(good, "uptrust_"),
		good + "0",
		good[:len(good)-1],
		strings.ToUpper(good[:8]) + good[8:],
		good[:9] + "g" + good[10:],
		strings.Replace(good, "_", "-", 2),
	} {
		if _, _, err := ParseToken(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseToken(%q) = %v, want ErrMalformed", bad, err)
		} else if len(bad) > 20 && strings.Contains(err.Error(), bad[20:]) {
			t.Errorf("ParseToken error repeats the presented text: %v", err)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"ci", "release-bot", "ops.team_2", "a"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "cli", "-x", "Bob", "a b", "é", strings.Repeat("a", 65)} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) succeeded", bad)
		}
	}
}

func TestEnrollmentToken(t *testing.T) {
	text, id, hash, err := NewEnrollmentToken()
	if err != nil {
		t.Fatal(err)
	}
	gotID, secret, err := ParseEnrollmentToken(text)
	if err != nil || gotID != id || !SecretMatches(secret, hash) {
		t.Fatalf("ParseEnrollmentToken(%q) = %q, %v; want id %q and a secret matching", text, gotID, err, id)
	}
	if _, _, err := ParseToken(text); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseToken accepted an enrolment token: %v", err)
	}
	mgmt, _, _, _ := NewToken()
	if _, _, err := ParseEnrollmentToken(mgmt); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseEnrollmentToken accepted a management token: %v", err)
	}
}
