// Package agent is the device side of uptrust: a persisted state machine
// that checks both TUF repositories, installs an agreed release into the
// inactive A/B slot, boots it on trial, health-checks it and commits it or
// rolls back, and reports outcomes anonymously. In managed mode
// (managed.go, docs/device-protocol.md) the device also has its own key,
// enrols with the server and signs its requests; it updates only once the
// server accepted it, tells the server the steps of each update as signed
// events (events.go, best effort) and honours the maintenance window of
// its own fleet view (window.go). Its steady-state check is one conditional
// request of its own fleet timestamp, and a 304 ends it until a full TUF
// refresh is due (quick.go, which states the security argument: a forged
// 304 can hide a new view for at most full_check_every and never make the
// device install anything).
//
// Where things are:
//   - phases.go: the state machine as one table — each phase, the steps it
//     may take (named by their power-loss points), what a restart in it
//     does; enter is the only code that changes the phase;
//   - decide.go (I/O) and choose.go (pure): what a check installs, and
//     every reason it installs nothing;
//   - install.go and resume.go: the actions of the steps;
//   - the transfer subpackage: moving bytes into the slot (plain, zstd,
//     staged, delta) and the checkpoint journal;
//   - events.go and window.go: managed mode's update events and
//     maintenance windows.
//
// Persisted before what:
//   - every phase is written to state.json (atomically, fsync'd) before the
//     action it names begins, and the power-loss point of the step is passed
//     only after that;
//   - download progress is saved only after the bytes it covers were
//     synced to the slot (or the staged file), and before more than the
//     power-loss budget (or what the link moves in the power-loss window,
//     when that is more) of later bytes is written;
//   - TUF metadata is fsync'd before a decision is made on it.
//
// Time: a check verifies metadata against its reference time (reftime.go),
// the latest of the clock, the agent's build time, the provisioning time
// and the last successful check, so a clock that reads 1970 cannot make
// expired metadata valid again; a clock behind that floor is shown in
// status, notified and reported once per stretch.
//
// What can never happen to the booted slot:
//   - it is never opened for writing (the slot backends refuse it), and
//     the bootloader is armed for the other slot only after that slot's
//     whole image matched the signed length and hashes — read back from the
//     slot when any part of it came from saved progress, or when it waited
//     there for a maintenance window;
//   - with a maintenance window in the verified fleet view, the bootloader
//     is armed only while the window is open by the device's clock;
//   - nothing is written to a slot before both repositories agree on the
//     target's length and hashes;
//   - no release below the highest security version ever committed, not
//     newer than the running one, failed before, or held by an owner rule
//     (adverse impact, a kind the maker does not install automatically,
//     automatic updates off, postponed) without the owner's consent is
//     installed (see choose and Judge).
//
// What a restart does, by phase (see machine): idle checks for an update;
// writing keeps saved progress for the check to resume (or drop), and
// forgets a write without it; arming arms again, or runs the trial if the
// device already booted the new slot; rebooting runs the trial, finishes a
// commit, reboots again or records a fallback as a failure; committing
// commits again or records the failure; reverting reverts again and
// reboots, or records the failure once back in the old slot.
//
// Also: the highest security version ever committed only grows; a release
// that failed is not retried; the accepted support declaration is never
// replaced by one that ends earlier.
//
// This package must not import the server, store or web packages (a test
// enforces it), so the agent binary stays small.
package agent
