package server

import (
	"fmt"
	"io"
	"log/slog"
)

// NewLogger returns the server's logger writing to w in format "text"
// (key=value) or "json" (one JSON object per line, for log collectors).
func NewLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
