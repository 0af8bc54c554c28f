//go:build !uptrust_notzdata

package main

// The IANA time zone database (about 400 KiB of the stripped static
// binary). Go uses it only where the device has no zoneinfo of its own
// (ZONEINFO, /usr/share/zoneinfo and the like are tried first), as on
// minimal Buildroot and Yocto images: without it every maintenance
// window in a named zone ("Mon-Fri 02:00-04:00 Europe/Berlin") would be
// refused and nothing would install. Devices known to ship zoneinfo may
// build without it: go build -tags uptrust_notzdata.
import _ "time/tzdata"
