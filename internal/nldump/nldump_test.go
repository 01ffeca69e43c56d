package nldump

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestDoRetriesInterruptedDumps(t *testing.T) {
	for _, tc := range []struct {
		name        string
		interrupted int
		wantErr     bool
		wantCalls   int
	}{
		{"a clean dump is returned at once", 0, false, 1},
		{"an interrupted dump is retried until it is clean", Attempts - 1, false, Attempts},
		{"a dump interrupted every time fails instead of returning partial data", Attempts + 3, true, Attempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			out, err := Do(func() ([]int, error) {
				calls++
				if calls <= tc.interrupted {
					return []int{1}, netlink.ErrDumpInterrupted
				}
				return []int{1, 2}, nil
			})
			if calls != tc.wantCalls {
				t.Errorf("dump called %d times, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr {
				if !errors.Is(err, netlink.ErrDumpInterrupted) || out != nil {
					t.Errorf("got %v, %v; want no data and ErrDumpInterrupted", out, err)
				}
				return
			}
			if err != nil || len(out) != 2 {
				t.Errorf("got %v, %v; want the clean dump", out, err)
			}
		})
	}
}

func TestDoPassesOtherErrorsThrough(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	_, err := Do(func() (int, error) { calls++; return 0, boom })
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("err %v after %d calls, want boom after 1", err, calls)
	}
}
