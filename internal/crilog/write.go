package crilog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

const (
	// MaxLine is the longest piece of a line one entry holds (containerd's
	// default max_container_log_line_size).
	MaxLine = 16 * 1024
	// TimeFormat is the fixed-width RFC 3339 time of an entry.
	TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

	Stdout = "stdout"
	Stderr = "stderr"
)

// Capture records what a process writes to its stdout and stderr pipes.
type Capture struct {
	// set at construction, read-only
	path   string
	stdout *os.File // write ends handed to the child
	stderr *os.File
	done   chan struct{}

	// mu serialises entries to the file and raw copies.
	mu  sync.Mutex
	out io.Writer // the log file
	raw io.Writer // optional plain copy of the output
	now func() time.Time
}

// NewCapture creates (or appends to) the CRI log at path and returns a
// Capture whose Stdout and Stderr are the pipes to give a process. raw, when
// not nil, also receives the output unchanged; Capture closes it (if it is an
// io.Closer) once the output has ended. Call Started once the process holds
// the pipes (or failed to start).
func NewCapture(path string, raw io.Writer) (*Capture, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("crilog: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("crilog: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		f.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("crilog: %w", err)
	}
	c := &Capture{path: path, stdout: outW, stderr: errW, done: make(chan struct{}), out: f, raw: raw, now: time.Now}
	readers := [2]*os.File{outR, errR}
	var wg sync.WaitGroup
	for i, stream := range []string{Stdout, Stderr} {
		wg.Go(func() {
			defer readers[i].Close()
			c.copyStream(stream, readers[i])
		})
	}
	go func() {
		wg.Wait()
		f.Close()
		if cl, ok := raw.(io.Closer); ok {
			cl.Close()
		}
		close(c.done)
	}()
	return c, nil
}

// Path is the log file.
func (c *Capture) Path() string { return c.path }

// Stdout and Stderr are the write ends to give the process.
func (c *Capture) Stdout() *os.File { return c.stdout }
func (c *Capture) Stderr() *os.File { return c.stderr }

// Started closes this process's copies of the write ends: from then on the
// log ends when the child's copies close.
func (c *Capture) Started() {
	c.stdout.Close()
	c.stderr.Close()
}

// Done is closed when every writer has gone and the log is complete.
func (c *Capture) Done() <-chan struct{} { return c.done }

// copyStream turns what r carries into entries until EOF.
func (c *Capture) copyStream(stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, MaxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			tag := "F"
			if errors.Is(err, bufio.ErrBufferFull) {
				tag = "P"
			}
			c.write(stream, tag, line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// write appends one entry. A last piece without a newline (the output
// ended mid-line) is ended by one, as containerd does.
func (c *Capture) write(stream, tag string, content []byte) {
	entry := make([]byte, 0, len(TimeFormat)+len(stream)+4+len(content)+1)
	entry = c.now().UTC().AppendFormat(entry, TimeFormat)
	entry = append(entry, ' ')
	entry = append(entry, stream...)
	entry = append(entry, ' ')
	entry = append(entry, tag...)
	entry = append(entry, ' ')
	entry = append(entry, content...)
	if entry[len(entry)-1] != '\n' {
		entry = append(entry, '\n')
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.out.Write(entry)
	if c.raw != nil {
		_, _ = c.raw.Write(content)
	}
}
