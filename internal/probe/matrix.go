package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// MatrixPod is one pod of a connectivity matrix: a row (it probes) and a
// column (it is probed).
type MatrixPod struct {
	// Key is how the pod is printed: NS/NAME.
	Key string
	// Name is the name podnet's test server answers with (the pod's
	// name): a reply from another pod is no connection to this one.
	Name  string
	Addr  netip.Addr
	NetNS string // path of the pod's network namespace
}

// Func is a probe: From, or a fake in tests.
type Func func(nsPath, protocol, target string, timeout time.Duration) (Reply, error)

// MatrixOptions say what to probe and how.
type MatrixOptions struct {
	Protocol string // tcp or udp
	Port     int
	// Timeout bounds one probe (UDP sends up to three datagrams within it).
	Timeout time.Duration
	// Parallel bounds the probes in flight (default 32).
	Parallel int
	// Probe is the probe to run (default From).
	Probe Func
}

// Matrix is a truth table of connectivity: which pod reaches which.
type Matrix struct {
	Froms []string `json:"froms"`
	Tos   []string `json:"tos"`
	// Allowed[from][to] is true when from reached to.
	Allowed map[string]map[string]bool `json:"allowed"`
	// Why holds, for each cell that did not connect, the reason
	// ("FROM -> TO").
	Why map[string]string `json:"why,omitempty"`
}

// NewMatrix returns an empty matrix of the pods' keys.
func NewMatrix(froms, tos []string) *Matrix {
	m := &Matrix{Froms: froms, Tos: tos, Allowed: map[string]map[string]bool{}, Why: map[string]string{}}
	for _, f := range froms {
		m.Allowed[f] = map[string]bool{}
	}
	return m
}

// RunMatrix probes every pair of pods (each to each, itself included) in
// parallel, at most o.Parallel at once. A connection counts only when the
// reply names the probed pod (podnet's test server) or names no pod (any
// other server). It returns an error, with the matrix, when some probes
// could not be sent at all (a namespace that cannot be entered): those
// cells are X with the reason in Why.
func RunMatrix(ctx context.Context, pods []MatrixPod, o MatrixOptions) (*Matrix, error) {
	if o.Protocol != "tcp" && o.Protocol != "udp" {
		return nil, fmt.Errorf("protocol %q: want tcp or udp", o.Protocol)
	}
	if o.Port < 1 || o.Port > 65535 {
		return nil, fmt.Errorf("port %d: want 1-65535", o.Port)
	}
	if o.Parallel <= 0 {
		o.Parallel = 32
	}
	if o.Probe == nil {
		o.Probe = From
	}
	keys := make([]string, len(pods))
	for i, p := range pods {
		keys[i] = p.Key
	}
	m := NewMatrix(keys, slices.Clone(keys))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed []error
	sem := make(chan struct{}, o.Parallel)
	for _, f := range pods {
		for _, d := range pods {
			if ctx.Err() != nil {
				break
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				ok, why, err := cell(f, d, o)
				mu.Lock()
				defer mu.Unlock()
				m.Allowed[f.Key][d.Key] = ok
				if !ok {
					m.Why[f.Key+" -> "+d.Key] = why
				}
				if err != nil {
					failed = append(failed, fmt.Errorf("%s -> %s: %w", f.Key, d.Key, err))
				}
			}()
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return m, err
	}
	return m, errors.Join(failed...)
}

// cell probes from f to d: whether it connected, why not, and an error
// when the probe could not be sent.
func cell(f, d MatrixPod, o MatrixOptions) (bool, string, error) {
	target := netip.AddrPortFrom(d.Addr, uint16(o.Port)).String()
	tries, timeout := 1, o.Timeout
	if o.Protocol == "udp" {
		tries, timeout = 3, o.Timeout/3 // a datagram may be lost; resend
	}
	var reply Reply
	var err error
	for i := 0; i < tries; i++ {
		reply, err = o.Probe(f.NetNS, o.Protocol, target, timeout)
		if err == nil {
			break
		}
	}
	var nr *NoReplyError
	switch {
	case errors.As(err, &nr):
		return false, nr.Error(), nil
	case err != nil:
		return false, err.Error(), err
	case reply.Pod != "" && reply.Pod != d.Name:
		return false, "answered by " + reply.Pod + ", not " + d.Name, nil
	}
	return true, "", nil
}

// String prints the matrix as the upstream Kubernetes NetworkPolicy e2e
// suite does: a header row of the probed pods, then one row per probing
// pod, "." for connected and "X" for not, tab-separated.
func (m *Matrix) String() string {
	return m.grid(func(f, d string) string {
		if m.Allowed[f][d] {
			return "."
		}
		return "X"
	})
}

func (m *Matrix) grid(mark func(from, to string) string) string {
	var b strings.Builder
	b.WriteString("-\t" + strings.Join(m.Tos, "\t") + "\n")
	for _, f := range m.Froms {
		b.WriteString(f)
		for _, d := range m.Tos {
			b.WriteString("\t" + mark(f, d))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ParseMatrix reads a matrix in String's format (fields separated by any
// white space; blank lines and lines starting with # are skipped), as an
// --expect file holds it.
func ParseMatrix(text string) (*Matrix, error) {
	var m *Matrix
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if m == nil {
			if f[0] != "-" {
				return nil, fmt.Errorf("line %d: the header starts with -, then the probed pods", i+1)
			}
			m = NewMatrix(nil, f[1:])
			continue
		}
		if len(f) != len(m.Tos)+1 {
			return nil, fmt.Errorf("line %d: %d cells, want %d (one per column)", i+1, len(f)-1, len(m.Tos))
		}
		from := f[0]
		if _, dup := m.Allowed[from]; dup {
			return nil, fmt.Errorf("line %d: row %s twice", i+1, from)
		}
		m.Froms = append(m.Froms, from)
		m.Allowed[from] = map[string]bool{}
		for j, c := range f[1:] {
			switch c {
			case ".":
				m.Allowed[from][m.Tos[j]] = true
			case "X", "x":
			default:
				return nil, fmt.Errorf("line %d: cell %q: want . or X", i+1, c)
			}
		}
	}
	if m == nil {
		return nil, errors.New("no matrix: want a header line (- POD POD ...) and one row per pod")
	}
	return m, nil
}

// Diff lists the cells where got differs from want, in want's order
// ("FROM -> TO: connected, want X" and the reverse, with why), and the
// pods one has and the other lacks. None means they agree.
func Diff(want, got *Matrix) []string {
	var out []string
	for _, f := range want.Froms {
		if _, ok := got.Allowed[f]; !ok {
			out = append(out, "row "+f+": expected, not probed")
			continue
		}
		for _, d := range want.Tos {
			if !slices.Contains(got.Tos, d) {
				continue
			}
			w, g := want.Allowed[f][d], got.Allowed[f][d]
			switch {
			case w == g:
			case g:
				out = append(out, f+" -> "+d+": connected (.), want X")
			default:
				out = append(out, f+" -> "+d+": X ("+got.Why[f+" -> "+d]+"), want .")
			}
		}
	}
	for _, d := range want.Tos {
		if !slices.Contains(got.Tos, d) {
			out = append(out, "column "+d+": expected, not probed")
		}
	}
	for _, f := range got.Froms {
		if _, ok := want.Allowed[f]; !ok {
			out = append(out, "row "+f+": probed, not in the expectation")
		}
	}
	for _, d := range got.Tos {
		if !slices.Contains(want.Tos, d) {
			out = append(out, "column "+d+": probed, not in the expectation")
		}
	}
	return out
}

// Counts returns how many cells connected and how many there are.
func (m *Matrix) Counts() (connected, total int) {
	for _, f := range m.Froms {
		for _, d := range m.Tos {
			total++
			if m.Allowed[f][d] {
				connected++
			}
		}
	}
	return connected, total
}
