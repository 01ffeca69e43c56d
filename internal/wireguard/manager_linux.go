package wireguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/routing"
)

// Config configures a node's encryption.
type Config struct {
	NodeName string
	// KeyFile holds the private key (made when missing).
	KeyFile string
	// Port is the UDP port (DefaultPort when 0).
	Port int
	// Strict drops, rather than sends in the clear, traffic to remote pods
	// that cannot go through the device.
	Strict bool
	// RotateEvery makes a new key when the key is this old (0: only on
	// request).
	RotateEvery time.Duration
	// Implementation is ImplAuto, ImplKernel or ImplUserspace.
	Implementation string
	// UAPIName names the user-space device's control socket (Device when
	// empty); nodes that share a file system need different names.
	UAPIName string
	// MTU of the device (1500 - Overhead when 0).
	MTU int
	// ClusterCIDRs are the pod CIDRs of the cluster, for strict mode.
	ClusterCIDRs []netip.Prefix
}

// Manager keeps the node's device, key, published annotations and
// strict-mode table in line with the Nodes. Its Sync is called by the
// routing controller (one sync at a time); Status and the metrics may be
// read concurrently.
type Manager struct {
	// set at construction, read-only
	cfg      Config
	client   kubernetes.Interface
	recorder record.EventRecorder
	log      *slog.Logger
	nft      knftables.Interface
	wg       *wgctrl.Client
	tun      *tunnel
	metrics  *Metrics

	// used by Sync only
	warned      map[string]string // node -> the malformed annotation last reported
	strictShape string            // what the strict table was last rendered from

	mu   sync.Mutex // guards key and plan
	key  Key
	plan Plan
}

// NewManager loads or makes the key, opens the device and takes over what
// a previous agent left (the persistent TUN and its routes).
func NewManager(ctx context.Context, cfg Config, client kubernetes.Interface, recorder record.EventRecorder,
	metrics *Metrics, log *slog.Logger) (*Manager, error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if err := checkPort(cfg.Port); err != nil {
		return nil, err
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500 - Overhead
	}
	if cfg.UAPIName == "" {
		cfg.UAPIName = Device
	}
	if cfg.Implementation == "" {
		cfg.Implementation = ImplAuto
	}
	switch cfg.Implementation {
	case ImplAuto, ImplKernel, ImplUserspace:
	default:
		return nil, fmt.Errorf("wireguard: unknown implementation %q (want %s, %s or %s)", cfg.Implementation, ImplAuto, ImplKernel, ImplUserspace)
	}
	key, err := LoadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("wireguard: %w", err)
	}
	nft, err := NewNFT()
	if err != nil {
		return nil, fmt.Errorf("wireguard: nftables: %w", err)
	}
	if !cfg.Strict {
		if err := DeleteStrict(ctx, nft); err != nil {
			return nil, fmt.Errorf("wireguard: remove the strict-mode table: %w", err)
		}
	}
	t, err := openTunnel(cfg.Implementation, cfg.UAPIName, cfg.MTU, log)
	if err != nil {
		return nil, fmt.Errorf("wireguard: %w", err)
	}
	wg, err := wgctrl.New()
	if err != nil {
		t.close()
		return nil, fmt.Errorf("wireguard: wgctrl: %w", err)
	}
	m := &Manager{cfg: cfg, client: client, recorder: recorder, log: log, nft: nft, wg: wg, tun: t, metrics: metrics,
		warned: map[string]string{}, key: key}
	if metrics != nil {
		metrics.source.Store(m)
	}
	go func() {
		<-ctx.Done()
		m.Close()
	}()
	m.restorePeers()
	impl := ImplUserspace
	if t.kernel {
		impl = ImplKernel
	}
	log.Info("wireguard device open", "device", Device, "implementation", impl, "handle", t.handle,
		"publicKey", key.Private.PublicKey().String(), "strict", cfg.Strict)
	return m, nil
}

// restorePeers configures the peers this node had at its last sync on a
// device that has none (a user-space device after a restart), so traffic
// to them flows again after one handshake; the first sync then corrects
// whatever changed meanwhile. A peer list that cannot be read is ignored.
func (m *Manager) restorePeers() {
	dev, err := m.wg.Device(m.tun.handle)
	if err != nil || len(dev.Peers) > 0 {
		return
	}
	peers, err := loadPeers(PeersFile(m.cfg.KeyFile))
	if err != nil {
		m.log.Warn("wireguard: cannot restore the last peers", "err", err)
		return
	}
	if len(peers) == 0 {
		return
	}
	if err := m.configure(m.key, peers); err != nil {
		m.log.Warn("wireguard: cannot restore the last peers", "err", err)
		return
	}
	m.log.Info("wireguard: restored the last peers before reading the Nodes", "peers", len(peers))
}

// Close lets go of the device (the persistent TUN and the kernel device
// stay, and so do their routes and the strict-mode table).
func (m *Manager) Close() {
	m.tun.close()
	m.wg.Close()
}

// Sync rotates the key when due, publishes it on this node's Node,
// configures a peer for every other node with a valid key (and removes the
// rest), renders the strict-mode table, and returns the device's index and
// the nodes to route into it.
func (m *Manager) Sync(ctx context.Context, nodes []*v1.Node) (routing.TunnelRoutes, error) {
	var self *v1.Node
	for _, n := range nodes {
		if n.Name == m.cfg.NodeName {
			self = n
		}
	}
	var errs []error
	key := m.currentKey()
	if self != nil {
		var err error
		if key, err = m.rotateIfDue(self, key); err != nil {
			errs = append(errs, err)
		}
		if err := m.publish(ctx, self, key); err != nil {
			errs = append(errs, err)
		}
	}
	plan := PlanPeers(m.cfg.NodeName, key.Private.PublicKey(), nodes)
	m.reportInvalid(nodes, plan)
	if err := m.configure(key, plan.Peers); err != nil {
		// Route nothing into a device whose peers are unknown.
		return routing.TunnelRoutes{}, errors.Join(append(errs, fmt.Errorf("configure %s: %w", Device, err))...)
	}
	m.mu.Lock()
	m.plan = plan
	m.mu.Unlock()
	if err := savePeers(PeersFile(m.cfg.KeyFile), plan.Peers); err != nil {
		m.log.Warn("wireguard: cannot save the peers for a quick restart", "err", err)
	}
	if m.cfg.Strict {
		var local []netip.Prefix
		if self != nil {
			local = routing.PodCIDRs(self)
		}
		if err := m.renderStrict(ctx, local); err != nil {
			errs = append(errs, fmt.Errorf("strict-mode table: %w", err))
		}
	}
	out := routing.TunnelRoutes{LinkIndex: m.tun.index(), Nodes: map[string]bool{}}
	for _, p := range plan.Peers {
		out.Nodes[p.Node] = true
	}
	if m.metrics != nil {
		m.metrics.peers.Set(float64(len(plan.Peers)))
		m.metrics.invalid.Set(float64(len(plan.Invalid)))
	}
	return out, errors.Join(errs...)
}

func (m *Manager) currentKey() Key {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.key
}

// rotateIfDue makes a new key when the rotation period has passed or the
// Node asks for one.
func (m *Manager) rotateIfDue(self *v1.Node, key Key) (Key, error) {
	due, err := RotationDue(key.Created, m.cfg.RotateEvery, self.Annotations[AnnotationRotate], time.Now())
	if err != nil {
		m.warnOnce(self, "rotate", err)
	}
	if !due {
		return key, nil
	}
	nk, err := NewKey(m.cfg.KeyFile)
	if err != nil {
		return key, fmt.Errorf("rotate the key: %w", err)
	}
	m.mu.Lock()
	m.key = nk
	m.mu.Unlock()
	if m.metrics != nil {
		m.metrics.rotations.Inc()
	}
	m.log.Info("wireguard key rotated", "publicKey", nk.Private.PublicKey().String(), "previousKeyCreated", key.Created)
	m.recorder.Eventf(nodeRef(self), v1.EventTypeNormal, "WireGuardKeyRotated",
		"podnet on %s made a new WireGuard key (the previous one was made %s)", m.cfg.NodeName, key.Created.UTC().Format(time.RFC3339))
	return nk, nil
}

// publish writes this node's key, endpoint and key age on its Node when
// they differ from what is there.
func (m *Manager) publish(ctx context.Context, self *v1.Node, key Key) error {
	ip, ok := routing.NodeInternalIP(self, 4)
	if !ok {
		if ip, ok = routing.NodeInternalIP(self, 6); !ok {
			return errors.New("this node has no InternalIP to publish as its WireGuard endpoint")
		}
	}
	want := SelfAnnotations(key.Private.PublicKey(), netip.AddrPortFrom(ip, uint16(m.cfg.Port)), key.Created)
	changed := false
	for k, v := range want {
		if self.Annotations[k] != v {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": want}})
	if err != nil {
		return err
	}
	if _, err := m.client.CoreV1().Nodes().Patch(ctx, self.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("publish the public key on Node %s: %w", self.Name, err)
	}
	return nil
}

// Unpublish removes this node's WireGuard annotations from its Node, if it
// has any: a node whose encryption was turned off must not keep a public
// key that makes its peers route into a tunnel it no longer has. A Node
// that does not exist (yet) has nothing to remove.
func Unpublish(ctx context.Context, client kubernetes.Interface, node string) error {
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	drop := map[string]any{}
	for _, k := range []string{AnnotationPublicKey, AnnotationEndpoint, AnnotationKeyCreated} {
		if _, ok := n.Annotations[k]; ok {
			drop[k] = nil
		}
	}
	if len(drop) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": drop}})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// reportInvalid writes a Warning Event on each node whose annotations are
// malformed, once per distinct problem.
func (m *Manager) reportInvalid(nodes []*v1.Node, plan Plan) {
	for _, n := range nodes {
		if err, bad := plan.Invalid[n.Name]; bad {
			m.warnOnce(n, "peer", err)
		} else {
			delete(m.warned, "peer/"+n.Name)
		}
	}
}

func (m *Manager) warnOnce(n *v1.Node, kind string, err error) {
	k := kind + "/" + n.Name
	if m.warned[k] == err.Error() {
		return
	}
	m.warned[k] = err.Error()
	m.log.Warn("wireguard: node skipped", "node", n.Name, "err", err)
	reason, msg := "WireGuardPeerSkipped", "podnet on %s does not encrypt to this node: %v; the other nodes are not affected"
	if kind == "rotate" {
		reason, msg = "WireGuardRotateInvalid", "podnet on %s cannot read the rotation request: %v"
	}
	m.recorder.Eventf(nodeRef(n), v1.EventTypeWarning, reason, msg, m.cfg.NodeName, err)
}

func nodeRef(n *v1.Node) *v1.ObjectReference {
	return &v1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: n.Name, UID: n.UID}
}

// configure changes the device only where it differs from the plan
// (configDiff): rewriting an unchanged peer or key would cost its sessions.
func (m *Manager) configure(key Key, peers []Peer) error {
	dev, err := m.wg.Device(m.tun.handle)
	if err != nil {
		return err
	}
	cfg, changed := configDiff(dev, DeviceConfig(key.Private, m.cfg.Port, peers))
	if !changed {
		return nil
	}
	return m.wg.ConfigureDevice(m.tun.handle, cfg)
}

func (m *Manager) renderStrict(ctx context.Context, local []netip.Prefix) error {
	shape := fmt.Sprint(m.cfg.ClusterCIDRs, local)
	if shape == m.strictShape {
		if _, _, ok := StrictDrops(ctx, m.nft); ok {
			return nil
		}
	}
	tx := m.nft.NewTransaction()
	RenderStrict(tx, m.cfg.ClusterCIDRs, local)
	if err := m.nft.Run(ctx, tx); err != nil {
		return err
	}
	m.strictShape = shape
	return nil
}

// Status is the node's encryption now: its key, its peers' handshakes and
// bytes from the device, and the nodes it skips.
func (m *Manager) Status(ctx context.Context) (Status, error) {
	m.mu.Lock()
	key, plan := m.key, m.plan
	m.mu.Unlock()
	impl := ImplUserspace
	if m.tun.kernel {
		impl = ImplKernel
	}
	st := Status{Node: m.cfg.NodeName, Implementation: impl, Device: Device, Handle: m.tun.handle, ListenPort: m.cfg.Port,
		PublicKey: key.Private.PublicKey().String(), KeyCreated: key.Created.UTC(), Strict: m.cfg.Strict,
		Pending: plan.Pending, Invalid: map[string]string{}}
	for n, err := range plan.Invalid {
		st.Invalid[n] = err.Error()
	}
	if m.cfg.Strict {
		st.StrictDrops, _, _ = StrictDrops(ctx, m.nft)
	}
	dev, err := m.wg.Device(m.tun.handle)
	if err != nil {
		return st, err
	}
	names := map[wgtypes.Key]string{}
	for _, p := range plan.Peers {
		names[p.PublicKey] = p.Node
	}
	for _, p := range dev.Peers {
		ps := PeerStatus{Node: names[p.PublicKey], PublicKey: p.PublicKey.String(), AllowedIPs: ipNets(p.AllowedIPs),
			LastHandshake: p.LastHandshakeTime.UTC(), ReceiveBytes: p.ReceiveBytes, TransmitBytes: p.TransmitBytes}
		if p.LastHandshakeTime.IsZero() || p.LastHandshakeTime.Unix() == 0 {
			ps.LastHandshake = time.Time{}
		}
		if p.Endpoint != nil {
			ps.Endpoint = p.Endpoint.String()
		}
		st.Peers = append(st.Peers, ps)
	}
	slices.SortFunc(st.Peers, func(a, b PeerStatus) int {
		if a.Node < b.Node {
			return -1
		}
		if a.Node > b.Node {
			return 1
		}
		return 0
	})
	if len(st.Invalid) == 0 {
		st.Invalid = nil
	}
	return st, nil
}

// ServeHTTP answers GET StatusPath with the Status as JSON.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st, err := m.Status(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}
