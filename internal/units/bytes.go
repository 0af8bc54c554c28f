package units

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is an amount of bytes. In JSON it is a number of bytes or a
// string with a unit such as "512KiB" or "2MiB" (see ParseByteSize); it is
// written as a string (see String).
type ByteSize int64

// maxByteSize bounds what a ByteSize accepts (1 TiB).
const maxByteSize = 1 << 40

// ParseByteSize reads a size such as "512KiB", "4MiB", "1.5MB" or "65536"
// (the units of ParseByteRate, without "/s"), from 0 to 1 TiB. Fractions
// of a byte are dropped.
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

// String writes the size in the largest binary unit that divides it
// exactly ("2MiB", "1536KiB", "1000000").
func (b ByteSize) String() string { return formatBytes(int64(b)) }

// byteUnits are the units parseAmount accepts, in lower case.
var byteUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
}

// parseAmount reads a non-negative number of bytes with an optional unit
// (byteUnits, case does not matter), such as "512KiB" or "1.5MB".
func parseAmount(s string) (float64, bool) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult, ok := byteUnits[strings.ToLower(unit)]
	v, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || !ok {
		return 0, false
	}
	return v * mult, true
}

// formatBytes writes n in the largest binary unit that divides it exactly
// ("2MiB", "1536KiB", "1000000").
func formatBytes(n int64) string {
	switch {
	case n == 0:
		return "0"
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}
