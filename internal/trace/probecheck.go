package trace

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/probe"
)

// ProbeTarget is the ADDR:PORT a real connection for e goes to (what the
// application would dial: the resolved name's address, the Service's
// cluster IP, the pod's address) and its protocol (tcp or udp); ok is
// false when there is nothing to probe (a name without an address, ICMP,
// SCTP).
func (e *Explanation) ProbeTarget() (target, protocol string, ok bool) {
	if e.Protocol != v1.ProtocolTCP && e.Protocol != v1.ProtocolUDP {
		return "", "", false
	}
	var dst netip.Addr
	switch {
	case e.Service != nil:
		dst = e.Service.ClusterIP
	case len(e.Paths) > 0:
		dst = e.Paths[0].Dst.Addr()
	default:
		return "", "", false
	}
	return netip.AddrPortFrom(dst, uint16(e.Port)).String(), strings.ToLower(string(e.Protocol)), true
}

// ProbeCheck is a real connection compared with the explanation.
type ProbeCheck struct {
	Target string `json:"target"` // ADDR:PORT probed
	// Replied says whether a reply came back; Pod is the pod that answered
	// (podnet's test server says who it is) and Client the address it saw.
	Replied bool   `json:"replied"`
	Pod     string `json:"pod,omitempty"`
	Client  string `json:"client,omitempty"`
	Error   string `json:"error,omitempty"`
	// Agrees says whether reality matched the explanation: a reply from a
	// path trace allowed, or no reply where it denied, rejected or dropped.
	Agrees bool   `json:"agrees"`
	Why    string `json:"why"`
}

// CheckProbe compares a probe's outcome (probe.From's reply and error)
// with e. An error that is no *probe.NoReplyError means the probe never
// went out: the caller should report it rather than compare.
func (e *Explanation) CheckProbe(target string, reply probe.Reply, err error) ProbeCheck {
	c := ProbeCheck{Target: target, Replied: err == nil, Pod: reply.Pod, Client: reply.Client}
	var nr *probe.NoReplyError
	if errors.As(err, &nr) {
		c.Error = nr.Error()
	}
	if !c.Replied {
		c.Agrees = e.Verdict != VerdictAllowed
		c.Why = "no reply; trace says " + e.Verdict
		return c
	}
	path := e.pathOfPod(reply.Pod)
	switch {
	case path == nil && e.Verdict == VerdictPartly:
		c.Why = "a reply, but from no endpoint trace knows (" + reply.Pod + "), so trace cannot say which path it took"
	case path == nil:
		c.Agrees = e.Verdict == VerdictAllowed
		c.Why = "a reply; trace says " + e.Verdict
	case path.result.Allowed():
		c.Agrees = true
		c.Why = fmt.Sprintf("%s answered, and trace allows the path to it", reply.Pod)
	default:
		c.Why = fmt.Sprintf("%s answered, but trace denies the path to it", reply.Pod)
	}
	return c
}

// pathOfPod is the path to the pod that answered as pod (podnet's test
// server answers with the pod's NAME; nil when none or pod is "").
func (e *Explanation) pathOfPod(pod string) *Path {
	if pod == "" {
		return nil
	}
	for i := range e.Paths {
		if p := e.Paths[i].Pod; p == pod || strings.HasSuffix(p, "/"+pod) {
			return &e.Paths[i]
		}
	}
	return nil
}

// String is the check as `podnet trace --probe` prints it.
func (c ProbeCheck) String() string {
	agree := "agrees with trace"
	if !c.Agrees {
		agree = "DISAGREES with trace"
	}
	got := "no reply (" + c.Error + ")"
	if c.Replied {
		got = "reply"
		if c.Pod != "" {
			got = "answered by " + c.Pod + ", which saw the client as " + c.Client
		}
	}
	return fmt.Sprintf("probe %s: %s: %s (%s)\n", c.Target, got, agree, c.Why)
}
