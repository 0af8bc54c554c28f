package agent

import (
	"encoding/json"
	"fmt"
	"math"
)

// ByteSize is an amount of bytes in the agent's configuration. In JSON it
// is a number of bytes or a string with a unit such as "512KiB" or "2MiB"
// (the units of ParseByteRate).
type ByteSize int64

// maxByteSize bounds what a ByteSize accepts (1 TiB).
const maxByteSize = 1 << 40

// UnmarshalJSON reads a number of bytes or a string with a unit.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var v float64
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		var ok bool
		if v, ok = parseAmount(s); !ok {
			return fmt.Errorf("size %q: want a number of bytes or a size such as 512KiB or 2MiB", s)
		}
	} else if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("size %s: want a number of bytes or a size such as \"512KiB\"", data)
	}
	if math.IsNaN(v) || v < 0 || v > maxByteSize {
		return fmt.Errorf("size %s: out of range (0 to 1TiB)", data)
	}
	*b = ByteSize(v)
	return nil
}

// MarshalJSON writes the size as a string in the largest binary unit that
// divides it exactly.
func (b ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

func (b ByteSize) String() string { return formatBytes(int64(b)) }
