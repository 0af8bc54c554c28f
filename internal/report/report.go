// Package report declares the anonymous outcome report, the one message a
// device sends to the server: its fields, the outcomes it may carry and
// the error classes the agent sends, and the checks the server applies
// before it counts one.
//
// Privacy: a report names a product, a release version, an outcome and,
// for a failure, an error class. It carries no device identifier, no
// address and no time; every field is a short token so that no free text
// (and with it no personal data) can reach the counters. The JSON field
// names and values below are a wire format spoken by agents in the field:
// they never change meaning.
//
// The package imports nothing of uptrust, so the agent may import it
// without linking server code.
package report

import (
	"errors"
	"fmt"
	"strings"
)

// Report is one anonymous outcome report about one release on one device.
type Report struct {
	Product    string  `json:"product"`
	Version    string  `json:"version"`
	Outcome    Outcome `json:"outcome"`
	ErrorClass Class   `json:"error_class,omitempty"`
}

// Outcome is what became of a release on a device.
type Outcome string

// Outcomes a report may carry, as the server counts them.
const (
	// OutcomeInstalled: the release was installed, booted and committed.
	OutcomeInstalled Outcome = "installed"
	// OutcomeRolledBack: the release was installed but the device went
	// back to the previous slot (failed health check or boot).
	OutcomeRolledBack Outcome = "rolled_back"
	// OutcomeFailed: installation failed before the device switched
	// slots, or the device could not reach what it needed (ClassNetwork).
	OutcomeFailed Outcome = "failed"
	// OutcomeRejected: the device refused the release (verification or
	// policy).
	OutcomeRejected Outcome = "rejected"
)

// VersionUnknown is the version of a report about a check that failed
// before it learned which release was offered. It is counted for every
// known product.
const VersionUnknown = "unknown"

// NumOutcomes is how many outcomes there are.
const NumOutcomes = 4

// Outcomes returns every outcome in the order documented above.
func Outcomes() [NumOutcomes]Outcome {
	return [NumOutcomes]Outcome{OutcomeInstalled, OutcomeRolledBack, OutcomeFailed, OutcomeRejected}
}

// Valid reports whether o is one of the outcomes above.
func (o Outcome) Valid() bool {
	for _, v := range Outcomes() {
		if o == v {
			return true
		}
	}
	return false
}

// MaxFieldLen is the longest value of any report field, in bytes.
const MaxFieldLen = 64

// Validate checks a report as the server does before counting it: product
// and version are required, every field is a token of at most MaxFieldLen
// bytes that starts with a letter or digit (product and error class:
// letters, digits, '.', '_', '-'; version also '+' and '~'), and the
// outcome is one of Outcomes. Any error class in that charset passes, not
// only the constants of this package, so that a newer agent's report is
// still counted: the server counts it under Counted's class. The errors
// are safe to show to the client.
func (r Report) Validate() error {
	if err := checkToken("product", r.Product, true, isNameByte); err != nil {
		return err
	}
	if err := checkToken("version", r.Version, true, isVersionByte); err != nil {
		return err
	}
	if r.Outcome == "" {
		return errors.New("invalid report: outcome is required")
	}
	if !r.Outcome.Valid() {
		quoted := make([]string, 0, NumOutcomes)
		for _, o := range Outcomes() {
			quoted = append(quoted, fmt.Sprintf("%q", o))
		}
		return errors.New("invalid report: outcome must be one of " + strings.Join(quoted, ", "))
	}
	return checkToken("error_class", string(r.ErrorClass), false, isNameByte)
}

// Counted returns r as the server counts it: an error class this package
// does not declare becomes ClassOther. A newer agent's failure is still
// counted as a failure of its release, while invented classes add at most
// one class value to the counters, not one per invention.
func (r Report) Counted() Report {
	if r.ErrorClass != "" && !r.ErrorClass.Declared() {
		r.ErrorClass = ClassOther
	}
	return r
}

func checkToken(field, v string, required bool, ok func(byte) bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("invalid report: %s is required", field)
		}
		return nil
	}
	if len(v) > MaxFieldLen {
		return fmt.Errorf("invalid report: %s is longer than %d bytes", field, MaxFieldLen)
	}
	if !isAlnum(v[0]) {
		return fmt.Errorf("invalid report: %s must start with a letter or digit", field)
	}
	for i := 0; i < len(v); i++ {
		if !ok(v[i]) {
			return fmt.Errorf("invalid report: %s contains a character outside its allowed set", field)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isNameByte allows letters, digits, '.', '_' and '-'.
func isNameByte(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' }

// isVersionByte also allows '+' and '~' (semver build metadata, Debian
// style pre-releases).
func isVersionByte(c byte) bool { return isNameByte(c) || c == '+' || c == '~' }
