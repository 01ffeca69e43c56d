package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podnet/podnet/bench/internal/localbench"
	"github.com/podnet/podnet/bench/internal/probe"
	"github.com/podnet/podnet/internal/lb/announce"
	"github.com/podnet/podnet/internal/lb/ipam"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proc"
)

// endpointNode is where the endpoints run: the VIPs are chosen so that
// another node announces them.
const endpointNode = 1

const appLabel = "lbbench-web"

// setup makes the namespace and two Ready endpoints on endpointNode, and
// learns every node's MAC on the node network.
func (c *cluster) setup(ctx context.Context) error {
	c.ns = "lbbench-" + c.suffix
	if _, err := c.cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	for i := 1; i <= c.cfg.Nodes; i++ {
		mac, err := linkMAC(netns.Path(c.cfg.NodeNSName(i)), "eth0")
		if err != nil {
			return fmt.Errorf("MAC of %s: %w", c.cfg.NodeName(i), err)
		}
		c.nodeMACs[i] = mac
	}
	for i := range 2 {
		name := fmt.Sprintf("web-%d", i)
		if _, err := c.cs.CoreV1().Pods(c.ns).Create(ctx, localbench.TestServerPod(name, c.cfg.NodeName(endpointNode), appLabel, port), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create pod %s: %w", name, err)
		}
		if err := c.waitPodReady(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// lbService is a LoadBalancer Service for the endpoints, UDP on port,
// with annotations (a requested address, a pool).
func lbService(name string, annotations map[string]string) *v1.Service {
	noNodePorts := false
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations, Labels: map[string]string{"bench": "lbbench"}},
		Spec: v1.ServiceSpec{
			Type:                          v1.ServiceTypeLoadBalancer,
			Selector:                      map[string]string{"app": appLabel},
			AllocateLoadBalancerNodePorts: &noNodePorts,
			Ports:                         []v1.ServicePort{{Name: "udp", Port: port, Protocol: v1.ProtocolUDP, TargetPort: intstr.FromInt32(port)}},
		},
	}
}

func (c *cluster) waitPodReady(ctx context.Context, name string) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		p, err := c.cs.CoreV1().Pods(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.Status.PodIP != "" && podReady(p) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod %s/%s not Ready after 90 s (err %v)", c.ns, name, err)
		}
		if !settle(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func podReady(p *v1.Pod) bool {
	for _, cd := range p.Status.Conditions {
		if cd.Type == v1.PodReady {
			return cd.Status == v1.ConditionTrue
		}
	}
	return false
}

// poolAddrs are the addresses of the cluster's default pool.
func (c *cluster) poolAddrs() []netip.Addr {
	var out []netip.Addr
	for a := c.cfg.LBPool.Masked().Addr(); c.cfg.LBPool.Contains(a); a = a.Next() {
		out = append(out, a)
	}
	return out
}

// setupVIP makes the Service "failover" with the first pool address that
// the rendezvous hash gives to a node other than endpointNode, and waits
// until the world reaches it through its owner.
func (c *cluster) setupVIP(ctx context.Context) error {
	var nodes []string
	for i := 1; i <= c.cfg.Nodes; i++ {
		nodes = append(nodes, c.cfg.NodeName(i))
	}
	for _, a := range c.poolAddrs() {
		if owner := announce.Owner(a, nodes); owner != c.cfg.NodeName(endpointNode) {
			c.vip = a
			for i, n := range nodes {
				if n == owner {
					c.owner = i + 1
				}
			}
			break
		}
	}
	if !c.vip.IsValid() {
		return fmt.Errorf("every address of %s belongs to %s", c.cfg.LBPool, c.cfg.NodeName(endpointNode))
	}
	c.ownerMAC = c.nodeMACs[c.owner]
	svc := lbService("failover", map[string]string{ipam.AnnotationIP: c.vip.String()})
	if _, err := c.cs.CoreV1().Services(c.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Service failover: %w", err)
	}
	p := &probe.UDP{NSPath: c.worldNS, Dst: netip.AddrPortFrom(c.vip, port), Every: 50 * time.Millisecond, Timeout: 200 * time.Millisecond, Payload: payload}
	pctx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	go func() {
		for pctx.Err() == nil {
			if _, ok := p.FirstReply(); ok {
				stop()
			}
			settle(pctx, 50*time.Millisecond)
		}
	}()
	p.Run(pctx)
	if _, ok := p.FirstReply(); !ok {
		return fmt.Errorf("the world got no reply from %s:%d within a minute", c.vip, port)
	}
	return c.waitOwner(ctx, c.owner, 20*time.Second)
}

// cleanup deletes what the run made and undoes a failure left behind
// (an agent not running is started from its record, a link set up).
func (c *cluster) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	for i := 1; i <= c.cfg.Nodes; i++ {
		if err := setLink(c, i, true); err != nil {
			errs = append(errs, err)
		}
		rec, err := proc.Read(c.cfg.ProcsDir(), "agent-"+c.cfg.NodeName(i))
		if err == nil && !proc.Alive(rec) {
			errs = append(errs, restartAgent(c, i))
		}
	}
	errs = append(errs, c.deleteAPICostObjects(ctx))
	if c.ns != "" {
		zero := int64(0)
		_ = c.cs.CoreV1().Pods(c.ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		if err := c.cs.CoreV1().Namespaces().Delete(ctx, c.ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", c.ns, err))
		}
	}
	return errors.Join(errs...)
}
