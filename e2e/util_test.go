package e2e

import (
	"context"
	"crypto/sha256"
	"errors"
)

type contextT = context.Context

var errUnhealthy = errors.New("service did not start")

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
