package agent

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/report"
)

// TestClassifyTransferErrors: the errors of the routes in package
// transfer, wrapped as the routes return them, map to their classes.
func TestClassifyTransferErrors(t *testing.T) {
	drop := &payload.SourceError{Offset: 10, Err: fmt.Errorf("payload: reading the source: %w", io.ErrUnexpectedEOF)}
	for _, tc := range []struct {
		err   error
		class report.Class
	}{
		{fmt.Errorf("%w (%d bytes): frame header", transfer.ErrWindowTooLarge, 8<<20), report.ClassPayloadWindow},
		{fmt.Errorf("%w: it is longer than the manifest's image_length 5", transfer.ErrImageMismatch), report.ClassImageHash},
		{fmt.Errorf("%w: slot b: %w", transfer.ErrImageMismatch, payload.ErrHashMismatch), report.ClassImageHash},
		{fmt.Errorf("%w: unexpected EOF", transfer.ErrDecode), report.ClassPayloadDecode},
		{fmt.Errorf("payload download interrupted 5 times in a row, at 10 of 20 bytes: %w", drop), report.ClassNetwork},
		{fmt.Errorf("downloading the delta: %w: %w", transfer.ErrDeltaInterrupted, drop), report.ClassNetwork},
		{fmt.Errorf("%w: sha256", payload.ErrHashMismatch), report.ClassPayloadHash},
		{&payload.SourceError{Offset: 20, Err: fmt.Errorf("payload: %w", fetch.ErrTooLong)}, report.ClassPayloadTooLong},
		{fmt.Errorf("%w: the server says the payload has 30 bytes, the signed metadata 20", payload.ErrTruncated), report.ClassPayloadTruncated},
		{errors.New("opening slot b at offset 0: permission denied"), report.ClassInstallIO},
	} {
		if got := classify(tc.err); got != tc.class {
			t.Errorf("classify(%v) = %s, want %s", tc.err, got, tc.class)
		}
	}
}
