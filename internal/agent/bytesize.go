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

// ParseByteSize reads a size such as "512KiB", "4MiB", "1.5MB" or "65536"
// (the units of ParseByteRate), from 0 to 1 TiB.
func ParseByteSize(s string) (ByteSize, error) {
	v, ok := parseAmount(s)
	if !ok {
		return 0, fmt.Errorf("size %q: want a number of bytes or a size such as 512KiB or 2MiB", s)
	}
	return checkByteSize(s, v)
}

func checkByteSize(s string, v float64) (ByteSize, error) {
	if math.IsNaN(v) || v < 0 || v > maxByteSize {
		return 0, fmt.Errorf("size %s: out of range (0 to 1TiB)", s)
	}
	return ByteSize(v), nil
}

// UnmarshalJSON reads a number of bytes or a string with a unit.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var s string
	var v ByteSize
	var err error
	if json.Unmarshal(data, &s) == nil {
		v, err = ParseByteSize(s)
	} else {
		var f float64
		if json.Unmarshal(data, &f) != nil {
			return fmt.Errorf("size %s: want a number of bytes or a size such as \"512KiB\"", data)
		}
		v, err = checkByteSize(string(data), f)
	}
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalJSON writes the size as a string in the largest binary unit that
// divides it exactly.
func (b ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

func (b ByteSize) String() string { return formatBytes(int64(b)) }
