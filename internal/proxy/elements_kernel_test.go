package proxy

import (
	"context"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/testserver"
)

// TestKernelNetlinkElementUpdates: endpoint changes go through the netlink
// writer, traffic follows them, and the kernel's maps and sets end up
// exactly as a syncer that writes everything through nft leaves them
// (same sequence, a second namespace). Dual-stack, so both address
// families' encodings are checked by nft's own listing.
func TestKernelNetlinkElementUpdates(t *testing.T) {
	viaNetlink, viaNFT := kernelNode(t), kernelNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveEndpoints(ctx, viaNetlink, testserver.Config{TCPPorts: []int{8080}})
	cfg := Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/56")}}
	web := svc("default", "web", "10.96.0.5", 80, 8080, 0)
	web.Spec.ClusterIPs = []string{"10.96.0.5", "fd00:10:96::5"}
	steps := []struct {
		addrs   []string
		netlink bool
	}{
		{[]string{"10.244.1.2", "fd00:10:244:1::2"}, false},              // the first sync is full
		{[]string{"10.244.1.3", "fd00:10:244:1::3"}, true},               // replaced
		{[]string{"10.244.1.3", "10.244.1.2", "fd00:10:244:1::3"}, true}, // grown
		{[]string{"10.244.1.2", "fd00:10:244:1::3"}, true},               // shrunk
		// v6 lost its endpoints: chains change, so nft writes it.
		{[]string{"10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"}, false},
		{[]string{"10.244.1.3", "10.244.1.2", "10.244.1.4", "10.244.1.5", "10.244.1.7"}, true},
	}
	var nlSyncer, nftSyncer *Syncer
	if err := netns.Do(viaNetlink, func() error {
		nft, err := NewNFT()
		if err != nil {
			return err
		}
		w, err := NewNetlinkElements()
		if err != nil {
			return err
		}
		t.Cleanup(func() { _ = w.Close() })
		nlSyncer = NewSyncer(nft, nil).WithElementWriter(w)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := netns.Do(viaNFT, func() error {
		nft, err := NewNFT()
		nftSyncer = NewSyncer(nft, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i, step := range steps {
		addrs := step.addrs
		sl4 := slice("default", "web", "", 8080)
		sl6 := slice("default", "web", "", 8080)
		sl6.Name, sl6.AddressType = "web-v6", discoveryv1.AddressTypeIPv6
		for _, a := range addrs {
			if strings.Contains(a, ":") {
				sl6.Endpoints = append(sl6.Endpoints, ep(a, "node-1", true, false))
			} else {
				sl4.Endpoints = append(sl4.Endpoints, ep(a, "node-1", true, false))
			}
		}
		sps := BuildServicePorts("node-1", []*v1.Service{web}, []*v1Slice{sl4, sl6})
		var res SyncResult
		err := netns.Do(viaNetlink, func() (err error) { res, err = nlSyncer.Sync(ctx, cfg, sps); return err })
		if err != nil {
			t.Fatalf("step %d: sync: %v", i, err)
		}
		if res.Netlink != step.netlink {
			t.Errorf("step %d: went through netlink = %v, want %v (%+v)", i, res.Netlink, step.netlink, res)
		}
		if err := netns.Do(viaNFT, func() error { _, err := nftSyncer.Sync(ctx, cfg, sps); return err }); err != nil {
			t.Fatalf("step %d: nft sync: %v", i, err)
		}
		if got, want := nftTable(t, viaNetlink), nftTable(t, viaNFT); got != want {
			t.Fatalf("step %d: the table written over netlink is\n%s\nwant (as nft writes it)\n%s", i, got, want)
		}
		// The v4 endpoints answer; only the current ones.
		var want []string
		for _, a := range addrs {
			if !strings.Contains(a, ":") {
				if pod, ok := map[string]string{"10.244.1.2": "ep-a", "10.244.1.3": "ep-b"}[a]; ok {
					want = append(want, pod)
				}
			}
		}
		if hasUnserved(addrs) {
			continue // 10.244.1.4 and up exist only in the table
		}
		seen := map[string]bool{}
		for range 12 {
			out, err := exec.Command("nsenter", "--net="+viaNetlink, "curl", "-s", "--max-time", "2", "http://10.96.0.5/").CombinedOutput()
			if err != nil {
				t.Fatalf("step %d: curl: %v %s", i, err, out)
			}
			pod, _, _ := testserver.ParseReply(string(out))
			seen[pod] = true
		}
		for pod := range seen {
			if !slices.Contains(want, pod) {
				t.Errorf("step %d: %s answered; the endpoints are %v", i, pod, want)
			}
		}
	}
}

// nftTable lists the proxy's table in the namespace at path, with the
// elements of every set and map sorted (the kernel's hash order differs).
func nftTable(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+path, "nft", "list", "table", "inet", Table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v %s", err, out)
	}
	text := string(out)
	var b strings.Builder
	for {
		i := strings.Index(text, "elements = {")
		if i < 0 {
			b.WriteString(text)
			return b.String()
		}
		i += len("elements = {")
		b.WriteString(text[:i])
		text = text[i:]
		end := strings.Index(text, "}")
		var els []string
		for _, e := range strings.Split(text[:end], ",") {
			if e = strings.Join(strings.Fields(e), " "); e != "" {
				els = append(els, e)
			}
		}
		slices.Sort(els)
		b.WriteString(" " + strings.Join(els, ", ") + " ")
		text = text[end:]
	}
}

// hasUnserved says whether addrs holds a v4 endpoint serveEndpoints does
// not serve.
func hasUnserved(addrs []string) bool {
	for _, a := range addrs {
		if !strings.Contains(a, ":") && a != "10.244.1.2" && a != "10.244.1.3" {
			return true
		}
	}
	return false
}
