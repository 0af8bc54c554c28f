// Package director computes a managed device's own view of the fleet
// repository (the Uptane director): targets, snapshot and timestamp
// signed with the fleet's online keys, listing exactly what that device
// should run now. Package managed serves it to the device whose verified
// key asked, and caches it; this package is the pure core (no I/O).
//
// Invariants:
//   - A device's targets are taken from the release repository's targets
//     role of its product with the same paths, lengths and hashes
//     (Select): the view can only choose among what the offline release
//     keys signed, and the agent still needs those keys to sign every
//     target (TAP 4), so a compromised server chooses among releases the
//     offline keys signed. The shared fleet view (anonymous devices') is
//     not needed: managed rollouts publish nothing there.
//   - An assigned device sees its release, the security-only companions
//     and the deltas of that offer, each offered release with
//     rollout.Custom's rule at percent 100 (the server admitted it) and
//     ManagedCustom (rollout, wave, window); an unassigned device sees no
//     release of its product; no device sees another product's targets.
//   - The three documents share one version, Version(generation, shared,
//     device record's last change), monotone per device across restarts
//     and replicas (see Version), so the device's TUF client never meets a
//     rollback. Build is deterministic: replicas at the same generation
//     and device record serve the same bytes, hence the same ETag.
//   - Expiry is the caller's: package managed gives each document the
//     expiry of its shared counterpart at that generation, so a view is
//     fresh exactly as long as the shared view is, and re-signing the
//     shared view (a new generation) renews every device's view.
package director
