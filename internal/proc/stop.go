package proc

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// killWait bounds how long Stop waits for a process after SIGKILL.
const killWait = 10 * time.Second

// Stop ends rec's process if, and only if, it is alive (see Alive): SIGTERM,
// then SIGKILL once grace has passed. It returns when the process has exited;
// a process that is already gone, or whose pid now belongs to another
// process, is success and is not signalled.
func Stop(rec *Record, grace time.Duration) error {
	if rec == nil || rec.PID <= 0 {
		return nil
	}
	// Open a pidfd first and check identity after: the pidfd pins the
	// process it was opened for, so no later pid reuse can redirect signals.
	pidfd, err := unix.PidfdOpen(rec.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("proc: stop %s (pid %d): %w", rec.Name, rec.PID, err)
	}
	defer unix.Close(pidfd)
	if !Alive(rec) {
		return nil
	}
	if err := signal(pidfd, unix.SIGTERM); err != nil {
		return fmt.Errorf("proc: stop %s (pid %d): %w", rec.Name, rec.PID, err)
	}
	if exited(pidfd, grace) {
		return nil
	}
	if err := signal(pidfd, unix.SIGKILL); err != nil {
		return fmt.Errorf("proc: kill %s (pid %d): %w", rec.Name, rec.PID, err)
	}
	if exited(pidfd, killWait) {
		return nil
	}
	return fmt.Errorf("proc: %s (pid %d) still running %s after SIGKILL", rec.Name, rec.PID, killWait)
}

func signal(pidfd int, sig unix.Signal) error {
	err := unix.PidfdSendSignal(pidfd, sig, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil // exited meanwhile
	}
	return err
}

// exited waits up to d for the pidfd to report that its process exited.
func exited(pidfd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left < 0 {
			left = 0
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds()))
		if err == nil && n > 0 {
			return true
		}
		if (err != nil && !errors.Is(err, unix.EINTR)) || (err == nil && left == 0) {
			return false
		}
	}
}

// StopAll stops every process recorded in dir, the most recently started
// first (so kube-apiserver ends before etcd), each with the given grace, and
// removes the records of those that are gone. It keeps going after an error
// and returns all errors joined.
func StopAll(dir string, grace time.Duration) error {
	recs, err := ReadAll(dir)
	errs := []error{err}
	slices.SortStableFunc(recs, func(a, b *Record) int {
		switch {
		case a.StartTime > b.StartTime:
			return -1
		case a.StartTime < b.StartTime:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, rec := range recs {
		if err := Stop(rec, grace); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, Remove(dir, rec.Name))
	}
	return errors.Join(errs...)
}

// LogTail returns up to the last n lines that rec's latest start wrote to
// its log file (earlier starts append to the same file), for error
// messages; "" when there is no log.
func LogTail(rec *Record, n int) string {
	if rec == nil || rec.LogFile == "" {
		return ""
	}
	tail := TailFile(rec.LogFile, n)
	if i := strings.LastIndex(tail, startMarker+rec.Name+" "); i >= 0 {
		tail = tail[i:]
	}
	return tail
}

// TailFile returns up to the last n lines of the file at path (reading at
// most its last 64 KiB); "" when it cannot be read.
func TailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-window, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
