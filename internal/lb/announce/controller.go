package announce

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/podnet/podnet/internal/controller"
	"github.com/podnet/podnet/internal/nldump"
	"github.com/podnet/podnet/internal/routing"
)

// KeySecret is the Secret (namespace ControllerConfig.KeyNamespace, default
// kube-system; key "key") that holds the heartbeat key when no key file is
// given; the first agent creates it.
const KeySecret = "podnet-lb-heartbeat"

// ControllerConfig configures the announcer of one node.
type ControllerConfig struct {
	NodeName string
	Port     uint16 // heartbeat port, DefaultPort when 0
	// KeyFile holds the heartbeat key; empty: the KeySecret Secret in
	// KeyNamespace (kube-system when empty).
	KeyFile      string
	KeyNamespace string
	// Status serves this node's view (optional).
	Status *Status
	// Stopped is done once the announcer has handed its VIPs over after
	// ctx ended (the agent waits for it before it exits).
	Stopped *sync.WaitGroup
	// LeaveTimeout bounds the wait for peers' acks (2 s when 0).
	LeaveTimeout time.Duration
}

// NewController returns the "lb-announce" controller: it reads Services,
// EndpointSlices and Nodes, and hands the VIPs with their candidate nodes
// and the peers' addresses to the node's Announcer, which it starts at the
// first sync (when this Node's InternalIP is known). When ctx ends, the
// announcer leaves gracefully.
func NewController(ctx context.Context, d controller.Deps, m *Metrics, cfg ControllerConfig) (*controller.Controller, error) {
	services := d.Factory.Core().V1().Services()
	slices := d.Factory.Discovery().V1().EndpointSlices()
	nodes := d.Factory.Core().V1().Nodes()
	if cfg.Stopped != nil {
		cfg.Stopped.Add(1)
	}
	s := &announceSync{cfg: cfg, ctx: ctx, client: d.Client, metrics: m, log: d.Logger("lb-announce"),
		services: services.Lister(), slices: slices.Lister(), nodes: nodes.Lister()}
	go s.leaveWhenDone()
	return controller.New(d, controller.Spec{
		Name: "lb-announce",
		Sources: []controller.Source{
			{Informer: services.Informer()}, {Informer: slices.Informer()},
			{Informer: nodes.Informer(), Ignore: sameNodeView},
		},
		Sync:        s.sync,
		MinInterval: 20 * time.Millisecond, MaxInterval: time.Minute,
		FailureEffect: "the VIPs and candidates of the previous sync stay announced",
	})
}

// announceSync is the controller's sync and the announcer it starts.
type announceSync struct {
	// set at construction, read-only
	cfg      ControllerConfig
	ctx      context.Context
	client   kubernetes.Interface
	metrics  *Metrics
	log      *slog.Logger
	services corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister
	nodes    corelisters.NodeLister

	ann atomic.Pointer[Announcer] // set by the first sync that can start it
}

func (s *announceSync) sync(ctx context.Context) error {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	a := s.ann.Load()
	if a == nil {
		if a, err = s.start(ctx); err != nil {
			return err
		}
	}
	peers, ready := peersOf(nodes, a.family)
	svcs, err := s.services.List(labels.Everything())
	if err != nil {
		return err
	}
	a.SetPeers(peers)
	a.SetTargets(Targets(svcs, ready, s.slicesOf))
	return nil
}

func (s *announceSync) slicesOf(key string) []*discoveryv1.EndpointSlice {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	out, _ := s.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name}))
	return out
}

// start finds this node's InternalIP and interface, reads the key and
// starts the announcer.
func (s *announceSync) start(ctx context.Context) (*Announcer, error) {
	self, err := s.nodes.Get(s.cfg.NodeName)
	if err != nil {
		return nil, fmt.Errorf("this node: %w", err)
	}
	ip, ok := routing.NodeInternalIP(self, 4)
	if !ok {
		if ip, ok = routing.NodeInternalIP(self, 6); !ok {
			return nil, fmt.Errorf("node %s has no InternalIP", s.cfg.NodeName)
		}
	}
	ifi, err := interfaceOf(ip)
	if err != nil {
		return nil, err
	}
	key, err := s.key(ctx)
	if err != nil {
		return nil, err
	}
	a, err := NewAnnouncer(AnnouncerConfig{Node: s.cfg.NodeName, Interface: ifi, NodeIP: ip, Port: s.cfg.Port,
		Key: key, Metrics: s.metrics, Log: s.log})
	if err != nil {
		return nil, err
	}
	a.Start()
	s.ann.Store(a)
	if s.cfg.Status != nil {
		s.cfg.Status.set(s.cfg.NodeName, a)
	}
	s.log.Info("announcing LoadBalancer IPs", "interface", ifi.Name, "heartbeat", netip.AddrPortFrom(ip, a.port))
	return a, nil
}

// leaveWhenDone hands the VIPs over when the agent stops.
func (s *announceSync) leaveWhenDone() {
	<-s.ctx.Done()
	if a := s.ann.Load(); a != nil {
		timeout := s.cfg.LeaveTimeout
		if timeout == 0 {
			timeout = 2 * time.Second
		}
		start := time.Now()
		missing := a.Leave(timeout)
		s.log.Info("left: VIPs handed over", "took", time.Since(start), "noAckFrom", missing)
	}
	if s.cfg.Stopped != nil {
		s.cfg.Stopped.Done()
	}
}

// key reads the heartbeat key from the key file, or from the Secret,
// creating it with a random key when it does not exist yet.
func (s *announceSync) key(ctx context.Context) ([]byte, error) {
	if s.cfg.KeyFile != "" {
		k, err := os.ReadFile(s.cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("heartbeat key: %w", err)
		}
		return k, nil
	}
	ns := s.cfg.KeyNamespace
	if ns == "" {
		ns = metav1.NamespaceSystem
	}
	secrets := s.client.CoreV1().Secrets(ns)
	for range 3 {
		sec, err := secrets.Get(ctx, KeySecret, metav1.GetOptions{})
		if err == nil && len(sec.Data["key"]) > 0 {
			return sec.Data["key"], nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("heartbeat key secret: %w", err)
		}
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		sec = &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: KeySecret}, Data: map[string][]byte{"key": k}}
		if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); err == nil {
			return k, nil
		} else if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("heartbeat key secret: %w", err)
		}
	}
	return nil, errors.New("heartbeat key secret: created and deleted concurrently")
}

// peersOf returns every node's InternalIP of family (the heartbeat peers)
// and the names of the Ready nodes (the candidates).
func peersOf(nodes []*v1.Node, family int) (map[string]netip.Addr, []string) {
	peers := map[string]netip.Addr{}
	var ready []string
	for _, n := range nodes {
		if ip, ok := routing.NodeInternalIP(n, family); ok {
			peers[n.Name] = ip
		}
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
				ready = append(ready, n.Name)
			}
		}
	}
	return peers, ready
}

// sameNodeView ignores Node updates that change neither readiness nor
// addresses (heartbeats of the kubelet).
func sameNodeView(old, cur any) bool {
	o, ok1 := old.(*v1.Node)
	c, ok2 := cur.(*v1.Node)
	if !ok1 || !ok2 {
		return false
	}
	op, or := peersOf([]*v1.Node{o}, 4)
	cp, cr := peersOf([]*v1.Node{c}, 4)
	o6, _ := peersOf([]*v1.Node{o}, 6)
	c6, _ := peersOf([]*v1.Node{c}, 6)
	return fmt.Sprint(op, or, o6) == fmt.Sprint(cp, cr, c6)
}

// interfaceOf returns the interface that has ip.
func interfaceOf(ip netip.Addr) (*net.Interface, error) {
	addrs, err := nldump.Do(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("node addresses: %w", err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			return net.InterfaceByIndex(a.LinkIndex)
		}
	}
	return nil, fmt.Errorf("no interface has the node's InternalIP %s", ip)
}

// Status serves this node's view as JSON (the agent mounts it at
// /lb/announcements on its metrics address; podnet status loadbalancers
// reads it through the API server's node proxy).
type Status struct {
	node string
	ann  atomic.Pointer[Announcer]
}

// NewStatus returns an empty Status (it answers once the announcer runs).
func NewStatus() *Status { return &Status{} }

func (st *Status) set(node string, a *Announcer) { st.node = node; st.ann.Store(a) }

// NodeView is what Status serves.
type NodeView struct {
	Node      string         `json:"node"`
	Alive     []string       `json:"alive"`
	Announced []Announcement `json:"announced"`
}

func (st *Status) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	a := st.ann.Load()
	if a == nil {
		http.Error(w, "the announcer has not started", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(NodeView{Node: st.node, Alive: a.AliveNodes(), Announced: a.Announced()})
}
