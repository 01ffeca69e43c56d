package crilog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Options select what Read shows (the kubelet's CRI log options).
type Options struct {
	// Follow keeps reading new entries until done is closed.
	Follow bool
	// TailLines, when not nil, starts at that many entries before the end.
	TailLines *int64
	// Since skips entries written before it.
	Since time.Time
	// Timestamps prefixes every line with its entry's time.
	Timestamps bool
	// LimitBytes, when not nil, stops after that many bytes of output.
	LimitBytes *int64
}

// PollInterval is how often a following Read looks for new entries.
const PollInterval = 100 * time.Millisecond

// errLimit ends a Read that wrote LimitBytes.
var errLimit = errors.New("limit reached")

// Read copies the entries of the log at path to stdout and stderr by stream
// (a nil writer skips its stream). With Follow it waits for new entries
// until done is closed (the log is complete) or ctx ends.
func Read(ctx context.Context, path string, done <-chan struct{}, opts Options, stdout, stderr io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("crilog: %w", err)
	}
	defer f.Close()
	start := int64(0)
	if opts.TailLines != nil {
		if start, err = tailStart(f, *opts.TailLines); err != nil {
			return fmt.Errorf("crilog: tail %s: %w", path, err)
		}
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("crilog: %w", err)
	}
	w := &entryWriter{opts: opts, stdout: stdout, stderr: stderr, remain: -1, lineStart: map[string]bool{}}
	if opts.LimitBytes != nil {
		w.remain = *opts.LimitBytes
		if w.remain <= 0 {
			return nil
		}
	}
	r := bufio.NewReaderSize(f, 2*MaxLine)
	for {
		line, err := r.ReadBytes('\n')
		if err == nil {
			if werr := w.entry(line); werr != nil {
				if errors.Is(werr, errLimit) {
					return nil
				}
				return werr
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("crilog: read %s: %w", path, err)
		}
		// At the end: an unfinished entry is read again once complete.
		if _, err := f.Seek(-int64(len(line)), io.SeekCurrent); err != nil {
			return fmt.Errorf("crilog: %w", err)
		}
		r.Reset(f)
		if !opts.Follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			// One more pass reads what was written before done.
			opts.Follow = false
		case <-time.After(PollInterval):
		}
	}
}

// entryWriter applies the options to parsed entries.
type entryWriter struct {
	opts           Options
	stdout, stderr io.Writer
	remain         int64 // bytes left under LimitBytes; -1 for no limit
	// lineStart: the stream's next entry begins a line (for Timestamps).
	lineStart map[string]bool
}

func (w *entryWriter) entry(line []byte) error {
	ts, stream, partial, content, err := parse(line)
	if err != nil {
		return nil // not an entry of this format: skipped, as the kubelet does
	}
	first, seen := w.lineStart[stream]
	w.lineStart[stream] = !partial
	if ts.Before(w.opts.Since) {
		return nil
	}
	out := w.stdout
	if stream == Stderr {
		out = w.stderr
	}
	if out == nil {
		return nil
	}
	if w.opts.Timestamps && (first || !seen) {
		content = append(append(ts.AppendFormat(nil, TimeFormat), ' '), content...)
	}
	limited := false
	if w.remain >= 0 && int64(len(content)) >= w.remain {
		content, limited = content[:w.remain], true
	}
	n, err := out.Write(content)
	if w.remain >= 0 {
		w.remain -= int64(n)
	}
	if err != nil {
		return err
	}
	if limited {
		return errLimit
	}
	return nil
}

// parse splits one entry; content keeps its newline unless partial.
func parse(line []byte) (ts time.Time, stream string, partial bool, content []byte, err error) {
	fields := bytes.SplitN(line, []byte{' '}, 4)
	if len(fields) != 4 {
		return ts, "", false, nil, errors.New("not a CRI log entry")
	}
	if ts, err = time.Parse(time.RFC3339Nano, string(fields[0])); err != nil {
		return ts, "", false, nil, err
	}
	stream = string(fields[1])
	if stream != Stdout && stream != Stderr {
		return ts, "", false, nil, fmt.Errorf("unknown stream %q", stream)
	}
	partial = bytes.HasPrefix(fields[2], []byte("P"))
	content = fields[3]
	if partial {
		content = bytes.TrimSuffix(content, []byte{'\n'})
	}
	return ts, stream, partial, content, nil
}

// tailStart returns the offset of the n-th entry from the end of f (0 when
// f holds fewer; the end when n is 0).
func tailStart(f *os.File, n int64) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if n < 0 {
		return 0, nil
	}
	// Entries end with '\n': the start of the n-th last entry follows the
	// (n+1)-th last newline, counting the file's final one.
	buf := make([]byte, 32*1024)
	seen := int64(0)
	for end := size; end > 0; {
		from := max(end-int64(len(buf)), 0)
		chunk := buf[:end-from]
		if _, err := f.ReadAt(chunk, from); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				continue
			}
			if seen == n {
				return from + int64(i) + 1, nil
			}
			seen++
		}
		end = from
	}
	return 0, nil
}
