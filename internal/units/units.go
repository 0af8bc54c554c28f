// Package units reads and writes the quantities that uptrust's
// configuration files and command-line flags carry: durations that may
// count whole days, byte sizes, and byte rates.
//
// Both sides use it: the agent's agent.json, the manufacturer's
// uptrust.json and the uptrust CLI. It imports nothing of uptrust, so the
// agent may import it without linking server code. The JSON forms are part
// of files already in the field: they are written exactly as before and
// read leniently (a number or a string with a unit).
package units
