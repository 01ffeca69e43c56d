package crilog

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/ptr"
)

// Fixture conventions: entries are stamped from t0 on, one second apart, so
// Since can cut between any two of them.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// capture returns a Capture on a temporary file whose clock ticks one
// second per entry, and the raw copy.
func capture(t *testing.T) (*Capture, *bytes.Buffer) {
	t.Helper()
	raw := &bytes.Buffer{}
	c, err := NewCapture(filepath.Join(t.TempDir(), "0.log"), raw)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	tick := t0
	c.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		tick = tick.Add(time.Second)
		return tick.Add(-time.Second)
	}
	return c, raw
}

// finish closes the capture's write ends and waits for the log.
func finish(t *testing.T, c *Capture) {
	t.Helper()
	c.Started()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("capture never finished")
	}
}

func write(t *testing.T, f *os.File, s string) {
	t.Helper()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestCaptureWritesOneEntryPerLineAndSplitsLongLines(t *testing.T) {
	c, raw := capture(t)
	long := strings.Repeat("x", MaxLine+10)
	write(t, c.Stdout(), "one\ntwo\n")
	write(t, c.Stdout(), long+"\n")
	write(t, c.Stdout(), "no newline at the end")
	finish(t, c)
	b, err := os.ReadFile(c.Path())
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"2026-05-01T12:00:00.000000000Z stdout F one",
		"2026-05-01T12:00:01.000000000Z stdout F two",
		"2026-05-01T12:00:02.000000000Z stdout P " + long[:MaxLine],
		"2026-05-01T12:00:03.000000000Z stdout F " + long[MaxLine:],
		"2026-05-01T12:00:04.000000000Z stdout F no newline at the end",
	}, "\n") + "\n"
	if string(b) != want {
		t.Errorf("log file:\n%.300s\nwant:\n%.300s", b, want)
	}
	if got := raw.String(); got != "one\ntwo\n"+long+"\nno newline at the end" {
		t.Errorf("raw copy = %.80q", got)
	}
}

func TestCaptureIsDoneOnlyWhenTheLastWriterHasGone(t *testing.T) {
	c, _ := capture(t)
	child, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(c.Stderr().Fd())), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Started() // our copies closed; "child" still holds stderr
	select {
	case <-c.Done():
		t.Fatal("done while a writer still held the pipe")
	case <-time.After(200 * time.Millisecond):
	}
	write(t, child, "late\n")
	child.Close()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("never done after the last writer closed")
	}
	b, _ := os.ReadFile(c.Path())
	if !strings.HasSuffix(string(b), " stderr F late\n") {
		t.Errorf("log = %q", b)
	}
}

// sample is a log of both streams with a line split into pieces:
//
//	12:00:00 stdout "a1"   12:00:01 stderr "e1"   12:00:02 stdout "a2"
//	12:00:03 stdout "lo" + 12:00:04 stdout "ng"   (one line in two entries)
//	12:00:05 stderr "e2"
const sample = `2026-05-01T12:00:00.000000000Z stdout F a1
2026-05-01T12:00:01.000000000Z stderr F e1
2026-05-01T12:00:02.000000000Z stdout F a2
2026-05-01T12:00:03.000000000Z stdout P lo
2026-05-01T12:00:04.000000000Z stdout F ng
2026-05-01T12:00:05.000000000Z stderr F e2
`

func TestReadAppliesTheKubeletLogOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		opts       Options
		noStderr   bool
		out, errs  string
		sameWriter bool
	}{
		{name: "everything goes to its stream", opts: Options{}, out: "a1\na2\nlong\n", errs: "e1\ne2\n"},
		{name: "tail counts entries from the end", opts: Options{TailLines: ptr.To[int64](2)}, out: "ng\n", errs: "e2\n"},
		{name: "tail zero shows nothing", opts: Options{TailLines: ptr.To[int64](0)}},
		{name: "tail longer than the log shows it all", opts: Options{TailLines: ptr.To[int64](100)}, out: "a1\na2\nlong\n", errs: "e1\ne2\n"},
		{name: "since skips older entries", opts: Options{Since: t0.Add(2 * time.Second)}, out: "a2\nlong\n", errs: "e2\n"},
		{name: "timestamps prefix each line once, not each piece",
			opts: Options{Timestamps: true, Since: t0.Add(3 * time.Second)},
			out:  "2026-05-01T12:00:03.000000000Z long\n", errs: "2026-05-01T12:00:05.000000000Z e2\n"},
		{name: "limit bytes cuts the output across streams", opts: Options{LimitBytes: ptr.To[int64](7)},
			sameWriter: true, out: "a1\ne1\na"},
		{name: "a stream not asked for is skipped and not counted", opts: Options{LimitBytes: ptr.To[int64](5)},
			noStderr: true, out: "a1\na2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			var stderr io.Writer = &errs
			switch {
			case tc.sameWriter:
				stderr = &out
			case tc.noStderr:
				stderr = nil
			}
			if err := Read(context.Background(), path, nil, tc.opts, &out, stderr); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.out || errs.String() != tc.errs {
				t.Errorf("stdout %q stderr %q, want %q %q", out.String(), errs.String(), tc.out, tc.errs)
			}
		})
	}
}

func TestFollowShowsLaterOutputAndEndsWithTheLog(t *testing.T) {
	c, _ := capture(t)
	write(t, c.Stdout(), "before\n")
	pr, pw := io.Pipe()
	ended := make(chan error, 1)
	go func() {
		ended <- Read(context.Background(), c.Path(), c.Done(), Options{Follow: true}, pw, pw)
		pw.Close()
	}()
	followed := bufio.NewReader(pr)
	next := func(want string) {
		t.Helper()
		if line, err := followed.ReadString('\n'); line != want {
			t.Fatalf("followed %q (%v), want %q", line, err, want)
		}
	}
	next("before\n")
	write(t, c.Stderr(), "after\n")
	next("after\n")
	write(t, c.Stdout(), "last words\n")
	c.Started()
	next("last words\n")
	if rest, err := io.ReadAll(followed); err != nil || len(rest) != 0 {
		t.Errorf("after the end: %q %v", rest, err)
	}
	select {
	case err := <-ended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end with the log")
	}
}

func TestFollowEndsWithTheContext(t *testing.T) {
	c, _ := capture(t)
	defer c.Started()
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	go func() { ended <- Read(ctx, c.Path(), c.Done(), Options{Follow: true}, nil, nil) }()
	cancel()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("follow ignored its context")
	}
}
