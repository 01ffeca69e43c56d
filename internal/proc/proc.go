package proc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/podnet/podnet/internal/netns"
)

// Record identifies one started process; it is stored as <dir>/<Name>.json.
type Record struct {
	Name      string   `json:"name"`
	PID       int      `json:"pid"`
	StartTime uint64   `json:"startTime"` // field 22 of /proc/<pid>/stat
	Argv      []string `json:"argv"`
	LogFile   string   `json:"logFile,omitempty"`
	Netns     string   `json:"netns,omitempty"` // namespace path it was started in
}

// Spec says how to start a process.
type Spec struct {
	Name    string   // record name: [A-Za-z0-9][A-Za-z0-9._-]*
	Argv    []string // Argv[0] is the program (a path, or looked up in PATH)
	Env     []string // nil: the caller's environment
	Dir     string   // working directory; "" for the caller's
	LogFile string   // stdout and stderr are appended here (created 0640)
	Netns   string   // path of a network namespace to start in; "" for the caller's
}

// ErrRunning is returned (wrapped) by Start when a live process is already
// recorded under the same name.
var ErrRunning = errors.New("already running")

// startMarker begins the line Start writes to the log before each start.
const startMarker = "---- podnet: starting "

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Start starts spec's process detached, records it in dir and returns the
// record. It refuses (ErrRunning) if the record for spec.Name matches a live
// process. The process is reaped by this process while it lives, by init
// afterwards.
func Start(dir string, spec Spec) (*Record, error) {
	if !validName.MatchString(spec.Name) {
		return nil, fmt.Errorf("proc: invalid name %q", spec.Name)
	}
	if len(spec.Argv) == 0 || spec.LogFile == "" {
		return nil, fmt.Errorf("proc: %s: argv and log file are required", spec.Name)
	}
	if old, err := Read(dir, spec.Name); err == nil && Alive(old) {
		return nil, fmt.Errorf("proc: %s: %w as pid %d", spec.Name, ErrRunning, old.PID)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("proc: %s: %w", spec.Name, err)
	}
	if err := os.MkdirAll(filepath.Dir(spec.LogFile), 0o755); err != nil {
		return nil, fmt.Errorf("proc: %s: %w", spec.Name, err)
	}
	logf, err := os.OpenFile(spec.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("proc: %s: %w", spec.Name, err)
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "%s%s at %s: %s\n", startMarker, spec.Name,
		time.Now().Format(time.RFC3339), strings.Join(spec.Argv, " "))

	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if spec.Netns != "" {
		// The child is cloned from the calling thread, which Do has moved
		// into the namespace, so it starts there.
		err = netns.Do(spec.Netns, cmd.Start)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("proc: start %s: %w", spec.Name, err)
	}
	pid := cmd.Process.Pid
	// Not yet waited for, so the pid cannot have been reused: at worst the
	// child is a zombie, whose stat is still readable.
	st, err := readStat(pid)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("proc: start %s: %w", spec.Name, err)
	}
	// Reap the child when it exits, so it does not linger as a zombie while
	// this process lives, and note how it ended in its log.
	go func() {
		status := "exited with status 0"
		if err := cmd.Wait(); err != nil {
			status = "ended: " + err.Error() // "exit status 1", "signal: killed"
		}
		if f, err := os.OpenFile(spec.LogFile, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			fmt.Fprintf(f, "---- podnet: %s (pid %d) %s at %s\n", spec.Name, pid, status, time.Now().Format(time.RFC3339))
			f.Close()
		}
	}()
	rec := &Record{Name: spec.Name, PID: pid, StartTime: st.startTime, Argv: spec.Argv,
		LogFile: spec.LogFile, Netns: spec.Netns}
	if err := write(dir, rec); err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("proc: start %s: record: %w", spec.Name, err)
	}
	return rec, nil
}

// Alive reports whether rec's process is running: its pid exists, is not a
// zombie and has the recorded start time.
func Alive(rec *Record) bool {
	if rec == nil || rec.PID <= 0 {
		return false
	}
	st, err := readStat(rec.PID)
	return err == nil && st.startTime == rec.StartTime && st.state != 'Z' && st.state != 'X'
}

// path of the record for name in dir.
func path(dir, name string) string { return filepath.Join(dir, name+".json") }

func write(dir string, rec *Record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+rec.Name+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path(dir, rec.Name))
}

// Read reads the record for name in dir.
func Read(dir, name string) (*Record, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("proc: invalid name %q", name)
	}
	data, err := os.ReadFile(path(dir, name))
	if err != nil {
		return nil, fmt.Errorf("proc: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("proc: %s: %w", path(dir, name), err)
	}
	return &rec, nil
}

// ReadAll reads every record in dir, sorted by name. A missing dir holds no
// records.
func ReadAll(dir string) ([]*Record, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("proc: %w", err)
	}
	var recs []*Record
	var errs []error
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || !validName.MatchString(name) {
			continue
		}
		rec, err := Read(dir, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs = append(recs, rec)
	}
	return recs, errors.Join(errs...)
}

// Remove deletes the record for name in dir; a missing one is success. It
// does not touch the process.
func Remove(dir, name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("proc: invalid name %q", name)
	}
	if err := os.Remove(path(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("proc: %w", err)
	}
	return nil
}

type stat struct {
	state     byte
	session   int
	startTime uint64
}

// readStat parses /proc/<pid>/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted from the last ')'.
func readStat(pid int) (stat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return stat{}, fmt.Errorf("proc: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(data[i+1:])) // f[0] is field 3
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, fmt.Errorf("proc: malformed /proc/%d/stat", pid)
	}
	session, err1 := strconv.Atoi(f[3])             // field 6
	start, err2 := strconv.ParseUint(f[19], 10, 64) // field 22
	if err1 != nil || err2 != nil {
		return stat{}, fmt.Errorf("proc: malformed /proc/%d/stat", pid)
	}
	return stat{state: f[0][0], session: session, startTime: start}, nil
}

// StartTime returns field 22 of /proc/<pid>/stat: when the process started,
// in clock ticks after boot.
func StartTime(pid int) (uint64, error) {
	st, err := readStat(pid)
	return st.startTime, err
}

// Adopt records a process some other code started (pid, with its start
// time, so a reused pid is never mistaken for it), so that StopAll on dir
// can end it later. The pod runtime records its containers this way.
func Adopt(dir, name string, pid int, argv []string) (*Record, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("proc: invalid name %q", name)
	}
	st, err := StartTime(pid)
	if err != nil {
		return nil, fmt.Errorf("proc: adopt %s (pid %d): %w", name, pid, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rec := &Record{Name: name, PID: pid, StartTime: st, Argv: argv}
	if err := write(dir, rec); err != nil {
		return nil, err
	}
	return rec, nil
}
