package cli

// Exit statuses beyond 0 (success), 1 (error) and 2 (usage).
const (
	// exitShallNotMet: uptrust compliance found a shall provision not
	// met. The report was printed in full; CI can gate on this status.
	exitShallNotMet = 3
)

// exitError ends a command with its own exit status; Main prints err like
// any other error and returns code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }
