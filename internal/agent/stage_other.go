//go:build !unix

package agent

import "errors"

// freeBytes is not known here: compressed payloads are then streamed.
func freeBytes(string) (int64, error) {
	return 0, errors.New("agent: free space unknown on this system")
}
