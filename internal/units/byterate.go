package units

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// ByteRate is a download rate limit in bytes per second; 0 means no limit.
// In JSON it is a number of bytes per second or a string with a unit, as
// ParseByteRate reads it. Its only setting is the agent's
// download_rate_limit, which its error messages name.
type ByteRate int64

// MinByteRate is the lowest limit accepted: below it an update of a few
// megabytes would take days, which is almost certainly a wrong unit.
const MinByteRate = 1024

// maxByteRate bounds what ParseByteRate accepts (1 TiB/s).
const maxByteRate = 1 << 40

// ParseByteRate reads a rate such as "512KiB", "2MiB", "1.5MB/s" or
// "65536": a non-negative number, an optional unit (B, kB, MB, GB in powers
// of 1000, KiB, MiB, GiB in powers of 1024; case does not matter) and an
// optional "/s". Fractions of a byte are dropped. "0" means no limit;
// otherwise the rate must be at least MinByteRate.
func ParseByteRate(s string) (ByteRate, error) {
	v, ok := parseAmount(strings.TrimSuffix(strings.TrimSpace(s), "/s"))
	if !ok {
		return 0, fmt.Errorf("download_rate_limit %q: want bytes per second, e.g. 512KiB, 2MiB, 1.5MB or 65536", s)
	}
	return checkByteRate(s, v)
}

func checkByteRate(s string, v float64) (ByteRate, error) {
	if math.IsNaN(v) || v < 0 || v > maxByteRate {
		return 0, fmt.Errorf("download_rate_limit %q: out of range (0 to 1TiB per second)", s)
	}
	r := ByteRate(v)
	if v > 0 && r < MinByteRate {
		return 0, fmt.Errorf("download_rate_limit %q is %d bytes per second, below the minimum of %d; use 0 for no limit, or a unit such as KiB", s, r, MinByteRate)
	}
	return r, nil
}

// Validate checks a rate set in code rather than parsed: the same range
// and minimum as ParseByteRate.
func (r ByteRate) Validate() error {
	_, err := checkByteRate(r.String(), float64(r))
	return err
}

// UnmarshalJSON reads a number of bytes per second or a string with a unit.
func (r *ByteRate) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := ParseByteRate(s)
		if err != nil {
			return err
		}
		*r = v
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("download_rate_limit: want a number of bytes per second or a string such as \"2MiB\"")
	}
	v, err := checkByteRate(string(b), f)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalJSON writes the rate as a string, in the largest binary unit that
// divides it exactly ("2MiB", "1536KiB", "1000000").
func (r ByteRate) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// String writes the rate as MarshalJSON does, without quotes.
func (r ByteRate) String() string { return formatBytes(int64(r)) }
