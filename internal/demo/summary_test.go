package demo

import "testing"

// TestReportsText: the demo's report counts read as words, not a Go map.
func TestReportsText(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]int
		want string
	}{
		{map[string]int{"rolled_back": 1, "installed": 9}, "9 installed, 1 rolled back"},
		{map[string]int{"zzz": 2, "failed": 1, "installed": 0}, "1 failed, 2 zzz"},
		{nil, "none"},
	} {
		s := Summary{Reports: tc.in}
		if got := s.ReportsText(); got != tc.want {
			t.Errorf("ReportsText(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
