package proc

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netns"
)

// startSleep starts `sleep 30` recorded as name in dir and stops it at the
// end of the test.
func startSleep(t *testing.T, dir, name string) *Record {
	t.Helper()
	rec, err := Start(dir, Spec{Name: name, Argv: []string{"sleep", "30"},
		LogFile: filepath.Join(dir, "logs", name+".log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Stop(rec, time.Second) })
	return rec
}

// waitGone waits until pid no longer exists (reaped), failing after 10s.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, os.ErrNotExist) {
			return
		}
	}
	t.Fatalf("pid %d still exists", pid)
}

func TestStartRecordsAndStopEnds(t *testing.T) {
	dir := t.TempDir()
	rec := startSleep(t, dir, "sleeper")
	if !Alive(rec) {
		t.Fatal("a just started process is not alive")
	}
	back, err := Read(dir, "sleeper")
	if err != nil {
		t.Fatal(err)
	}
	if back.PID != rec.PID || back.StartTime != rec.StartTime || strings.Join(back.Argv, " ") != "sleep 30" {
		t.Errorf("record read back as %+v, want %+v", back, rec)
	}
	st, err := readStat(rec.PID)
	if err != nil {
		t.Fatal(err)
	}
	if st.session != rec.PID {
		t.Errorf("process is in session %d, want its own (%d)", st.session, rec.PID)
	}
	if _, err := Start(dir, Spec{Name: "sleeper", Argv: []string{"sleep", "30"},
		LogFile: rec.LogFile}); !errors.Is(err, ErrRunning) {
		t.Errorf("starting a second live process under the same name: %v, want ErrRunning", err)
	}

	start := time.Now()
	if err := Stop(rec, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if Alive(rec) {
		t.Error("process alive after Stop")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop took %v for a process that exits on SIGTERM", d)
	}
	waitGone(t, rec.PID)
	if err := Stop(rec, time.Second); err != nil {
		t.Errorf("stopping a gone process: %v", err)
	}
}

func TestARecordWithAnotherStartTimeIsNotThatProcess(t *testing.T) {
	dir := t.TempDir()
	rec := startSleep(t, dir, "victim")
	impostor := *rec
	impostor.StartTime++ // what a reused pid looks like
	if Alive(&impostor) {
		t.Fatal("a record with the wrong start time is alive")
	}
	if err := Stop(&impostor, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if !Alive(rec) {
		t.Fatal("Stop of a record with the wrong start time ended the process")
	}
}

func TestStopKillsAProcessThatIgnoresSIGTERM(t *testing.T) {
	dir := t.TempDir()
	rec, err := Start(dir, Spec{Name: "stubborn",
		Argv:    []string{"sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.05; done`},
		LogFile: filepath.Join(dir, "stubborn.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Stop(rec, 0) })
	waitForLog(t, rec.LogFile, "\nready\n") // not the header line, which quotes argv
	start := time.Now()
	if err := Stop(rec, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("Stop returned after %v, before the grace period", d)
	}
	if Alive(rec) {
		t.Error("process that ignores SIGTERM survived Stop")
	}
}

func TestLogReceivesOutputAndExitedIsNotAlive(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "logs", "talker.log")
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logFile, []byte("old line\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	var rec *Record
	for range 2 { // a second start appends to the same log
		var err error
		rec, err = Start(dir, Spec{Name: "talker",
			Argv:    []string{"sh", "-c", "echo to-stdout; echo to-stderr >&2; read x || echo stdin-closed; exit 3"},
			LogFile: logFile})
		if err != nil {
			t.Fatal(err)
		}
		waitForLog(t, logFile, "talker (pid "+strconv.Itoa(rec.PID)+") ended: exit status 3")
		waitGone(t, rec.PID)
		if Alive(rec) {
			t.Error("an exited process is alive")
		}
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"old line", "podnet: starting talker", "to-stdout", "to-stderr", "stdin-closed",
		"talker (pid " + strconv.Itoa(rec.PID) + ") ended: exit status 3"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("log lacks %q:\n%s", want, data)
		}
	}
	if tail := LogTail(rec, 3); !strings.HasPrefix(tail, "to-stderr\nstdin-closed\n---- podnet: talker") {
		t.Errorf("LogTail(3) = %q", tail)
	}
	tail := LogTail(rec, 100)
	if strings.Count(tail, "podnet: starting talker") != 1 || !strings.HasPrefix(tail, "---- podnet: starting talker") {
		t.Errorf("LogTail(100) is not the latest start's output:\n%s", tail)
	}
}

func TestStartFailureNamesTheProcess(t *testing.T) {
	dir := t.TempDir()
	_, err := Start(dir, Spec{Name: "ghost", Argv: []string{filepath.Join(dir, "no-such-binary")},
		LogFile: filepath.Join(dir, "ghost.log")})
	if err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("error %v does not name the process", err)
	}
	if _, err := Read(dir, "ghost"); err == nil {
		t.Error("a process that failed to start was recorded")
	}
	for _, name := range []string{"", "../x", "a/b"} {
		if _, err := Start(dir, Spec{Name: name, Argv: []string{"true"}, LogFile: filepath.Join(dir, "x.log")}); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
}

func TestStopAllEndsNewestFirstAndRemovesRecords(t *testing.T) {
	dir := t.TempDir()
	order := filepath.Join(dir, "order")
	var recs []*Record
	for _, name := range []string{"first", "second", "third"} {
		rec, err := Start(dir, Spec{Name: name,
			Argv:    []string{"sh", "-c", `trap "echo ` + name + ` >> ` + order + `; exit 0" TERM; echo ready; while :; do sleep 0.02; done`},
			LogFile: filepath.Join(dir, name+".log")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = Stop(rec, 0) })
		waitForLog(t, rec.LogFile, "\nready\n") // not the header line, which quotes argv
		time.Sleep(20 * time.Millisecond)       // start times are in 10 ms ticks
		recs = append(recs, rec)
	}
	stale := &Record{Name: "stale", PID: recs[0].PID, StartTime: recs[0].StartTime + 12345, Argv: []string{"x"}}
	if err := write(dir, stale); err != nil {
		t.Fatal(err)
	}
	if err := StopAll(dir, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if Alive(rec) {
			t.Errorf("StopAll left %s running", rec.Name)
		}
	}
	data, err := os.ReadFile(order)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(data)); strings.Join(got, " ") != "third second first" {
		t.Errorf("processes ended in order %v, want newest first", got)
	}
	left, err := ReadAll(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("records left after StopAll: %v", left)
	}
}

func TestStartInNetworkNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
	name := netns.UniqueName("pnt-proc-")
	nsPath, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(name) })
	dir := t.TempDir()
	rec, err := Start(dir, Spec{Name: "inside", Argv: []string{"sleep", "30"},
		LogFile: filepath.Join(dir, "inside.log"), Netns: nsPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Stop(rec, time.Second) })
	if rec.Netns != nsPath {
		t.Errorf("record netns %q, want %q", rec.Netns, nsPath)
	}
	var want, got, self unix.Stat_t
	if err := unix.Stat(nsPath, &want); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/"+strconv.Itoa(rec.PID)+"/ns/net", &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		t.Fatal(err)
	}
	if got.Ino != want.Ino {
		t.Errorf("process runs in netns inode %d, want %d", got.Ino, want.Ino)
	}
	if self.Ino == want.Ino {
		t.Error("the caller's thread was left inside the namespace")
	}
}

func waitForLog(t *testing.T, path, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if data, _ := os.ReadFile(path); strings.Contains(string(data), want) {
			return
		}
	}
	t.Fatalf("%s never contained %q", path, want)
}

func TestAdoptRecordsAProcessStartedElsewhere(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "containers")
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	rec, err := Adopt(dir, "default.web.c.1", cmd.Process.Pid, cmd.Args)
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(rec) {
		t.Fatal("the adopted process is not alive by its record")
	}
	if _, err := Adopt(dir, "bad/name", cmd.Process.Pid, nil); err == nil {
		t.Error("Adopt accepted a name with a slash")
	}
	if err := StopAll(dir, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("StopAll did not end the adopted process")
	}
	if recs, _ := ReadAll(dir); len(recs) != 0 {
		t.Errorf("%d records left after StopAll", len(recs))
	}
}
