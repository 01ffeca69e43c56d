package e2e

// Encryption on the containerd cluster: podnet installed from deploy/
// with encryption: wireguard and strict mode (podnet up --node-runtime
// containerd --encryption wireguard --encryption-strict), the agents
// running the user-space device on the TUN device that
// deploy/components/wireguard-userspace mounts.
//
// Fixture conventions: a containerd cluster of its own (the test
// uninstalls podnet from it), named cre-<random>, direct routing, address
// plan nodes 172.29.56.0/24, pods 10.176.0.0/16, services 10.186.0.0/16,
// world 198.18.56.0/24. Pods enc-a on node 1 and enc-b on node 2 run the
// test image.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/localcluster/crinode"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/testserver"
	"github.com/podnet/podnet/internal/wireguard"
)

const encPods = `
apiVersion: v1
kind: Pod
metadata: {name: enc-a}
spec:
  nodeName: %[1]s
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: enc-b, labels: {app: enc-b}}
spec:
  nodeName: %[2]s
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: enc-b}
spec:
  type: NodePort
  selector: {app: enc-b}
  ports: [{port: 80}]
`

// encPayload is how many bytes of the request enc-a sends enc-b through
// the tunnel: a URL path the test server must read whole before it
// answers.
const encPayload = 100_000

func TestContainerdEncryption(t *testing.T) {
	needContainerd(t)
	c, cfg := upOwn(t, "cre-"+randHex(3), "--node-runtime containerd --encryption wireguard --encryption-strict",
		"--node-runtime", "containerd", "--encryption", "wireguard", "--encryption-strict",
		"--pod-cidr", "10.176.0.0/16", "--service-cidr", "10.186.0.0/16", "--node-network", "172.29.56.0/24",
		"--world-network", "198.18.56.0/24")
	c.apply(t, fmt.Sprintf(encPods, cfg.NodeName(1), cfg.NodeName(2)))
	c.kubectl(t, "wait", "--for=condition=Ready", "pod/enc-a", "pod/enc-b", "--timeout=120s")
	aIP := c.kubectl(t, "get", "pod", "enc-a", "-o", "jsonpath={.status.podIP}")
	bIP := c.kubectl(t, "get", "pod", "enc-b", "-o", "jsonpath={.status.podIP}")

	t.Run("each node has a key of its own, published on its Node", func(t *testing.T) {
		pubs := map[string]bool{}
		for i := 1; i <= cfg.Nodes; i++ {
			pub := nodeKey(t, cfg, i)
			if ann := c.kubectl(t, "get", "node", cfg.NodeName(i), "-o", `jsonpath={.metadata.annotations.podnet\.io/wireguard-public-key}`); ann != pub {
				t.Errorf("%s: Node annotation %s = %q, want the public half of its key file, %s", cfg.NodeName(i), wireguard.AnnotationPublicKey, ann, pub)
			}
			pubs[pub] = true
		}
		if len(pubs) != cfg.Nodes {
			t.Errorf("the %d nodes have %d different keys", cfg.Nodes, len(pubs))
		}
		// The host's own directory is not where the nodes keep theirs.
		if b, err := os.ReadFile(filepath.Join(crinode.HostWireGuardDir, "private.key")); err == nil {
			if k, err := wgtypes.ParseKey(strings.TrimSpace(string(b))); err == nil && pubs[k.PublicKey().String()] {
				t.Errorf("the host's %s holds a node's key", crinode.HostWireGuardDir)
			}
		}
	})

	t.Run("every agent has a handshake with its peer and routes its pod CIDR into pnwg0", func(t *testing.T) {
		var rows []encryptionRow
		eventually(t, 60*time.Second, "every node's peer has a handshake", func() error {
			rows = encryptionStatus(t, c)
			return allShaken(rows, cfg.Nodes)
		})
		for _, r := range rows {
			st := r.Status
			if st.Implementation != wireguard.ImplUserspace || st.Device != wireguard.Device || !st.Strict || st.ListenPort != wireguard.DefaultPort {
				t.Errorf("%s: %s device %s, strict %v, port %d; want userspace %s, strict, %d", r.Node, st.Implementation, st.Device, st.Strict, st.ListenPort, wireguard.Device, wireguard.DefaultPort)
			}
		}
		for i := 1; i <= cfg.Nodes; i++ {
			other := cfg.NodeName(3 - i)
			cidr := c.kubectl(t, "get", "node", other, "-o", "jsonpath={.spec.podCIDR}")
			out, err := exec.Command("ip", "netns", "exec", cfg.NodeNSName(i), "ip", "route", "show", cidr).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "dev "+wireguard.Device) || !strings.Contains(string(out), "proto 80") {
				t.Errorf("%s: route to %s's pod CIDR %s: %q (%v), want dev %s proto 80", cfg.NodeName(i), other, cidr, out, err, wireguard.Device)
			}
		}
		if mtu := strings.TrimSpace(c.kubectl(t, "exec", "enc-a", "--", "cat", "/sys/class/net/eth0/mtu")); mtu != fmt.Sprint(1500-wireguard.Overhead) {
			t.Errorf("enc-a's eth0 MTU %s, want %d (1500 less WireGuard's overhead)", mtu, 1500-wireguard.Overhead)
		}
	})

	t.Run("pod traffic between nodes goes through WireGuard, never in the clear", func(t *testing.T) {
		marker := "pnenc-" + randHex(8)
		before := peerBytes(t, c, cfg)
		capture := startTcpdump(t, cfg.NodeNSName(1), "eth0")
		// The control: what enters the tunnel, in the clear.
		inner := startTcpdump(t, cfg.NodeNSName(1), wireguard.Device)
		// The request's path is the marker and encPayload bytes of "M".
		// Debian's wget by its path: busybox sh runs its own applet for a
		// bare "wget", and busybox-static's wget dies of SIGSEGV with -T.
		// One try: a retry would hide a lost first packet. The timeout is
		// generous for a 2-core machine running many clusters at once.
		script := fmt.Sprintf(`p=$(head -c %d /dev/zero | tr '\0' M); /usr/bin/wget -q -T 30 -t 1 -O- "http://%s/%s$p"`, encPayload, bIP, marker)
		out, err := c.podnet("kubectl", "--", "exec", "enc-a", "--", "sh", "-c", script)
		pcap, innerPcap := capture.stop(t), inner.stop(t)
		if err != nil {
			in := summarize(t, innerPcap, cfg.NodeIP(1), cfg.NodeIP(2), cfg.PodCIDR)
			sum := summarize(t, pcap, cfg.NodeIP(1), cfg.NodeIP(2), cfg.PodCIDR)
			t.Logf("capture on %s: %d packets, %d with a pod address; on eth0: %d packets, %d of WireGuard, %d with a pod address",
				wireguard.Device, in.packets, in.podPackets, sum.packets, sum.wgPackets, sum.podPackets)
			st, _ := c.podnet("status", "encryption")
			t.Logf("podnet status encryption:\n%s", st)
			for i := 1; i <= cfg.Nodes; i++ {
				tbl, _ := exec.Command("ip", "netns", "exec", cfg.NodeNSName(i), "nft", "list", "table", "inet", wireguard.Table).CombinedOutput()
				routes, _ := exec.Command("ip", "netns", "exec", cfg.NodeNSName(i), "ip", "route").CombinedOutput()
				t.Logf("%s:\n%s\n%s", cfg.NodeName(i), tbl, routes)
			}
			t.Fatalf("enc-a -> enc-b (%s) through the tunnel: %v\n%s", bIP, err, out)
		}
		after := peerBytes(t, c, cfg)
		if who, client, ok := testserver.ParseReply(out); !ok || who != "enc-b" || !strings.HasPrefix(client, aIP+":") {
			t.Fatalf("enc-a -> enc-b (%s): %q, want enc-b seeing %s", bIP, out, aIP)
		}
		sent := after[cfg.NodeName(1)].transmit - before[cfg.NodeName(1)].transmit
		got := after[cfg.NodeName(2)].receive - before[cfg.NodeName(2)].receive
		t.Logf("through the tunnel: node 1 sent %d bytes to node 2, which received %d; the request was %d bytes", sent, got, encPayload+len(marker))
		if sent < encPayload || got < encPayload {
			t.Errorf("node 1's peer counter grew by %d bytes sent, node 2's by %d received, want at least the %d of the request each", sent, got, encPayload)
		}
		markers := [][]byte{[]byte(marker), bytes.Repeat([]byte("M"), 32)}
		in := summarize(t, innerPcap, cfg.NodeIP(1), cfg.NodeIP(2), cfg.PodCIDR, markers...)
		t.Logf("capture on %s's %s: %d packets, %d with a pod address, %d with the marker", cfg.NodeName(1), wireguard.Device, in.packets, in.podPackets, in.markerPackets)
		if in.markerPackets == 0 || in.podPackets == 0 {
			t.Fatalf("the capture on %s shows %d packets with the marker, %d with a pod address, of %d: it would not see them on eth0 either",
				wireguard.Device, in.markerPackets, in.podPackets, in.packets)
		}
		sum := summarize(t, pcap, cfg.NodeIP(1), cfg.NodeIP(2), cfg.PodCIDR, markers...)
		t.Logf("capture on %s's eth0: %d packets, %d UDP %d bytes of WireGuard between the nodes, %d with a pod address, %d with the marker",
			cfg.NodeName(1), sum.packets, sum.wgPackets, sum.wgBytes, sum.podPackets, sum.markerPackets)
		if sum.markerPackets > 0 || sum.podPackets > 0 {
			t.Errorf("%d packets on eth0 carry the request's text, %d a pod address: pod traffic left unencrypted", sum.markerPackets, sum.podPackets)
		}
		if sum.wgBytes < encPayload {
			t.Errorf("the capture holds %d bytes of UDP %d between %s and %s, want at least the request's %d: the capture missed the transfer",
				sum.wgBytes, wireguard.DefaultPort, cfg.NodeIP(1), cfg.NodeIP(2), encPayload)
		}
	})

	// The user-space device lives in the agent; its TUN, routes and key
	// outlive it, so the next agent takes the tunnel over with the same
	// key. Meanwhile the node's encrypted traffic waits while its agent pod
	// is replaced (with TCP's retransmission backoff a rolling restart of
	// both stalled a connection for 1.7 to 3.4 s here, up to 6.8 s before
	// the agents restored their saved peers), so the kept connection may
	// wait up to 30 s for an answer, but must not break; the test logs the
	// longest wait.
	t.Run("a connection through the tunnel stays up through an agent rolling upgrade", func(t *testing.T) {
		nodePort := c.kubectl(t, "get", "svc", "enc-b", "-o", "jsonpath={.spec.ports[0].nodePort}")
		// node 1's NodePort, to enc-b on node 2: through the tunnel.
		target := netip.AddrPortFrom(cfg.NodeIP(1), uint16(atoi(t, nodePort)))
		eventually(t, 30*time.Second, "the NodePort answers from the world", func() error {
			return netns.Do("/run/netns/"+cfg.WorldNSName(), func() error {
				conn, err := net.DialTimeout("tcp", target.String(), 2*time.Second)
				if err == nil {
					conn.Close()
				}
				return err
			})
		})
		k := startKeeperWithin(t, "/run/netns/"+cfg.WorldNSName(), target, 30*time.Second)
		k.waitAnswers(t, 5)
		c.upgradeAgents(t, cfg)
		k.waitAnswers(t, 10)
		if err := k.stop(); err != nil {
			t.Errorf("the connection broke: %v", err)
		}
		t.Logf("%d requests answered on one connection, the slowest after %s", k.count(), k.slowest().Round(10*time.Millisecond))
		for i := 1; i <= cfg.Nodes; i++ {
			if pub, row := nodeKey(t, cfg, i), statusOf(t, c, cfg.NodeName(i)); row.PublicKey != pub {
				t.Errorf("%s: the new agent's key %s is not the one in its key file, %s", cfg.NodeName(i), row.PublicKey, pub)
			}
		}
	})

	t.Run("the documented uninstall removes the device, the strict table and the keys", func(t *testing.T) {
		for i := 1; i <= cfg.Nodes; i++ {
			left := podnetOnNode(t, cfg, i)
			if len(left["wireguard"]) == 0 || len(left["key"]) == 0 || !strings.Contains(strings.Join(left["table"], " "), wireguard.Table) {
				t.Fatalf("%s: no WireGuard device, key or table %s before the uninstall (found %v): the checks are blind", cfg.NodeName(i), wireguard.Table, left)
			}
		}
		out := runUninstallDoc(t, c)
		for _, want := range []string{"removed nftables table inet " + wireguard.Table, "removed link " + wireguard.Device + " (tuntap)", "removed " + wireguard.DefaultKeyFile} {
			if n := strings.Count(out, want); n != cfg.Nodes {
				t.Errorf("the cleanup pods' logs say %q %d times, want once per node", want, n)
			}
		}
		for i := 1; i <= cfg.Nodes; i++ {
			for kind, what := range podnetOnNode(t, cfg, i) {
				t.Errorf("%s: podnet %s left after the uninstall: %s", cfg.NodeName(i), kind, strings.Join(what, "; "))
			}
		}
		for i := 1; i <= cfg.Nodes; i++ {
			if a := c.kubectl(t, "get", "node", cfg.NodeName(i), "-o", "jsonpath={.metadata.annotations}"); strings.Contains(a, "podnet.io/wireguard-") {
				t.Errorf("%s: WireGuard annotations left: %s", cfg.NodeName(i), a)
			}
		}
	})
}

// nodeKey checks node i's key file (mode 0600 in a directory of mode
// 0700, its own under the state directory) and returns its public key.
func nodeKey(t *testing.T, cfg *localcluster.Config, i int) string {
	t.Helper()
	file := cfg.WireGuardKeyFile(i)
	for _, p := range []struct {
		path string
		mode os.FileMode
	}{{file, 0o600}, {filepath.Dir(file), 0o700}} {
		st, err := os.Stat(p.path)
		if err != nil {
			t.Fatalf("%s: %v", cfg.NodeName(i), err)
		}
		if st.Mode().Perm() != p.mode {
			t.Errorf("%s: mode %v, want %v", p.path, st.Mode().Perm(), p.mode)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return k.PublicKey().String()
}

// encryptionRow is one row of podnet status encryption -o json.
type encryptionRow struct {
	Node   string            `json:"node"`
	Status *wireguard.Status `json:"status"`
	Error  string            `json:"error"`
}

func encryptionStatus(t *testing.T, c *cluster) []encryptionRow {
	t.Helper()
	out, err := c.podnet("status", "encryption", "-o", "json")
	if err != nil {
		t.Fatalf("podnet status encryption: %v\n%s", err, out)
	}
	var rows []encryptionRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("podnet status encryption -o json: %v\n%s", err, out)
	}
	return rows
}

// allShaken says why rows are not n nodes that each have one peer with
// a handshake.
func allShaken(rows []encryptionRow, n int) error {
	if len(rows) != n {
		return fmt.Errorf("%d nodes answer, want %d: %+v", len(rows), n, rows)
	}
	for _, r := range rows {
		if r.Status == nil {
			return fmt.Errorf("%s: %s", r.Node, r.Error)
		}
		if len(r.Status.Peers) != n-1 {
			return fmt.Errorf("%s: peers %+v (pending %v, invalid %v)", r.Node, r.Status.Peers, r.Status.Pending, r.Status.Invalid)
		}
		for _, p := range r.Status.Peers {
			if p.LastHandshake.IsZero() {
				return fmt.Errorf("%s: no handshake with %s yet", r.Node, p.Node)
			}
		}
	}
	return nil
}

// statusOf is node's agent's Status.
func statusOf(t *testing.T, c *cluster, node string) *wireguard.Status {
	t.Helper()
	for _, r := range encryptionStatus(t, c) {
		if r.Node == node && r.Status != nil {
			return r.Status
		}
	}
	t.Fatalf("podnet status encryption has no status of %s", node)
	return nil
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type byteCounts struct{ receive, transmit int64 }

// peerBytes is, per node, what its device received from and sent to its
// one peer.
func peerBytes(t *testing.T, c *cluster, cfg *localcluster.Config) map[string]byteCounts {
	t.Helper()
	rows := encryptionStatus(t, c)
	if err := allShaken(rows, cfg.Nodes); err != nil {
		t.Fatal(err)
	}
	out := map[string]byteCounts{}
	for _, r := range rows {
		p := r.Status.Peers[0]
		out[r.Node] = byteCounts{receive: p.ReceiveBytes, transmit: p.TransmitBytes}
	}
	return out
}

// tcpdumpCapture is tcpdump writing what crosses an interface of a node to a
// pcap file.
type tcpdumpCapture struct {
	cmd    *exec.Cmd
	file   string
	done   chan error
	stderr chan string // all of tcpdump's, once it ends
}

// startTcpdump starts tcpdump on dev in the named namespace and returns
// once it listens. --immediate-mode: without it libpcap hands packets
// over a buffer block at a time, and tcpdump stopped within a second
// writes none of them ("0 packets captured; 57 packets received"); -B:
// a buffer of 16 MiB, so that a burst is not dropped.
func startTcpdump(t *testing.T, ns, dev string) *tcpdumpCapture {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("tcpdump: %v (Debian package tcpdump; make deps installs it)", err)
	}
	c := &tcpdumpCapture{file: filepath.Join(t.TempDir(), dev+".pcap"), done: make(chan error, 1), stderr: make(chan string, 1)}
	c.cmd = exec.Command("nsenter", "--net="+netns.Path(ns), "--", "tcpdump", "-n", "--immediate-mode", "-B", "16384", "-U", "-i", dev, "-w", c.file, "not", "arp")
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); <-c.done })
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
			}
		}
		c.stderr <- strings.Join(lines, "\n")
		c.done <- c.cmd.Wait()
	}()
	select {
	case <-listening:
	case out := <-c.stderr:
		t.Fatalf("tcpdump in %s: %s", ns, out)
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump in %s does not listen after 10s", ns)
	}
	return c
}

// stop ends tcpdump (SIGINT: it writes out what it has) and returns the
// capture file's content.
func (c *tcpdumpCapture) stop(t *testing.T) []byte {
	t.Helper()
	time.Sleep(500 * time.Millisecond) // the last packets' way through the capture buffer
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-c.stderr:
		t.Logf("tcpdump: %s", strings.ReplaceAll(out, "\n", "; "))
		<-c.done
		c.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("tcpdump did not stop on SIGINT")
	}
	b, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// captureSummary counts a capture's packets by what they show.
type captureSummary struct {
	packets       int
	wgPackets     int // UDP between the two node addresses on WireGuard's port
	wgBytes       int // their UDP payload
	podPackets    int // IPv4 packets from or to a pod address
	markerPackets int // packets holding any of the markers
}

// Link types of pcap files (tcpdump -w): Ethernet (eth0), and raw IP
// (the TUN device pnwg0).
const (
	linkEthernet = 1
	linkRawIP    = 101
)

// summarize reads a pcap file (tcpdump -w: little-endian, microseconds,
// Ethernet or raw IP) packet by packet.
func summarize(t *testing.T, pcap []byte, node1, node2 netip.Addr, pods netip.Prefix, markers ...[]byte) captureSummary {
	t.Helper()
	var s captureSummary
	r := bytes.NewReader(pcap)
	var hdr struct {
		Magic        uint32
		Major, Minor uint16
		Zone, Sigf   int32
		Snap, Link   uint32
	}
	if err := binary.Read(r, binary.LittleEndian, &hdr); err != nil || hdr.Magic != 0xa1b2c3d4 || (hdr.Link != linkEthernet && hdr.Link != linkRawIP) {
		t.Fatalf("not a little-endian pcap file of Ethernet or raw IP: %+v, %v", hdr, err)
	}
	for {
		var rec struct{ Sec, Usec, Incl, Orig uint32 }
		if err := binary.Read(r, binary.LittleEndian, &rec); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("pcap record header: %v", err)
		}
		pkt := make([]byte, rec.Incl)
		if _, err := io.ReadFull(r, pkt); err != nil {
			t.Fatalf("pcap record: %v", err)
		}
		s.packets++
		for _, m := range markers {
			if bytes.Contains(pkt, m) {
				s.markerPackets++
				break
			}
		}
		ip := pkt
		if hdr.Link == linkEthernet {
			if len(pkt) < 14 || binary.BigEndian.Uint16(pkt[12:14]) != 0x0800 {
				continue
			}
			ip = pkt[14:]
		}
		if len(ip) < 20 || ip[0]>>4 != 4 {
			continue
		}
		ihl := int(ip[0]&0x0f) * 4
		src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		if pods.Contains(src) || pods.Contains(dst) {
			s.podPackets++
		}
		if ip[9] != syscall.IPPROTO_UDP || len(ip) < ihl+8 {
			continue
		}
		udp := ip[ihl:]
		sport, dport := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4])
		between := (src == node1 && dst == node2) || (src == node2 && dst == node1)
		if between && sport == wireguard.DefaultPort && dport == wireguard.DefaultPort {
			s.wgPackets++
			s.wgBytes += int(binary.BigEndian.Uint16(udp[4:6])) - 8
		}
	}
	return s
}
