package keys

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MinPassphraseLen is the fewest characters (runes) a passphrase for an
// encrypted key file may have.
const MinPassphraseLen = 12

// ErrWeakPassphrase is returned when a key would be encrypted under a
// passphrase that CheckPassphrase refuses.
var ErrWeakPassphrase = errors.New("keys: passphrase too weak")

// common holds the bases of the most used passwords (from public breach
// top lists), lower case. A passphrase is refused when, lower-cased and with
// digits, symbols and spaces removed, it is one of them or one of them
// repeated: "Password123!" and "qwertyqwerty" are refused.
var common = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`password passw0rd passwort motdepasse contraseña
		qwerty qwertyuiop qwertz azerty asdf asdfgh asdfghjkl zxcvbnm qazwsx
		abc abcd abcdef abcdefg abcdefgh letmein welcome admin administrator
		root toor login master monkey dragon football baseball soccer hockey
		iloveyou sunshine princess shadow superman batman trustno1 secret
		changeme default test testing guest user hello freedom whatever
		starwars pokemon michael jennifer jordan charlie thomas
		computer internet samsung google linux ubuntu raspberry firmware
		uptrust update updates release offline keys passphrase`) {
		common[letters(w, false)] = true
		common[letters(w, true)] = true
	}
}

// CheckPassphrase reports whether p is strong enough to encrypt an offline
// key: at least MinPassphraseLen characters, at least 6 different
// characters, not only digits, and not a common password with digits or
// symbols added. The error says what is wanted. A few random words ("correct
// horse battery staple") pass.
func CheckPassphrase(p []byte) error {
	const want = "use at least 12 characters, e.g. four or more random words"
	if !utf8.Valid(p) {
		return fmt.Errorf("%w: not valid UTF-8, %s", ErrWeakPassphrase, want)
	}
	s := string(p)
	if n := utf8.RuneCountInString(s); n < MinPassphraseLen {
		return fmt.Errorf("%w: %d characters, %s", ErrWeakPassphrase, n, want)
	}
	distinct := map[rune]bool{}
	onlyDigits := true
	for _, r := range s {
		distinct[unicode.ToLower(r)] = true
		if !unicode.IsDigit(r) && !unicode.IsSpace(r) {
			onlyDigits = false
		}
	}
	if len(distinct) < 6 {
		return fmt.Errorf("%w: only %d different characters, %s", ErrWeakPassphrase, len(distinct), want)
	}
	if onlyDigits {
		return fmt.Errorf("%w: only digits, %s", ErrWeakPassphrase, want)
	}
	if isCommon(letters(s, false)) || isCommon(letters(s, true)) {
		return fmt.Errorf("%w: it is a common password with digits or symbols added, %s", ErrWeakPassphrase, want)
	}
	return nil
}

// leet maps the digits and symbols commonly written for letters.
var leet = strings.NewReplacer("@", "a", "4", "a", "8", "b", "3", "e", "1", "i", "!", "i", "0", "o", "$", "s", "5", "s", "7", "t")

// letters returns the letters of s, lower case. With unleet it first cuts
// the digits and symbols off both ends and reads those left between letters
// as the letters they stand for ("P@ssw0rd 2024!" gives "password").
func letters(s string, unleet bool) string {
	if unleet {
		s = leet.Replace(strings.TrimFunc(s, func(r rune) bool { return !unicode.IsLetter(r) }))
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// isCommon reports whether s is a common password, possibly repeated.
func isCommon(s string) bool {
	if s == "" {
		return false
	}
	for n := 1; n <= len(s); n++ {
		if len(s)%n == 0 && strings.Repeat(s[:n], len(s)/n) == s && common[s[:n]] {
			return true
		}
	}
	return false
}
