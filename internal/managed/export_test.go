package managed

import "time"

// ForgetViews drops every cached view, so the next request computes it
// (BenchmarkViewRecompute).
func ForgetViews(h *Handler) {
	h.views.mu.RLock()
	defer h.views.mu.RUnlock()
	for _, e := range h.views.byKey {
		e.cur.Store(nil)
		e.prev.Store(nil)
	}
}

// ForceFullReload makes the next Poll read every device again.
func ForceFullReload(h *Handler) {
	h.views.pollMu.Lock()
	h.views.lastFull = time.Time{}
	h.views.pollMu.Unlock()
}
