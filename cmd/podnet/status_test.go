package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/proc"
)

// statusCluster is a saved cluster "st" in a temporary state directory with
// one live process record (this test) and two Nodes, one Ready.
func statusCluster(t *testing.T) (*localcluster.Config, kubernetes.Interface) {
	t.Helper()
	cfg := localcluster.DefaultConfig("st")
	cfg.StateDir = t.TempDir()
	cfg.ServiceProxy = localcluster.ServiceProxyKubeProxyNFTables
	if _, err := proc.Adopt(filepath.Join(cfg.StateDir, "procs"), "etcd", os.Getpid(), []string{"etcd"}); err != nil {
		t.Fatal(err)
	}
	node := func(name, cidr string, ready v1.ConditionStatus) *v1.Node {
		return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
			Status: v1.NodeStatus{Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: ready}}}}
	}
	return cfg, fake.NewClientset(node("st-node-1", "10.244.1.0/24", v1.ConditionTrue), node("st-node-2", "10.244.2.0/24", v1.ConditionFalse))
}

// testGuard is the guard runStatus reports: installed, 4 processes, 2
// packets dropped.
func testGuard(c *localcluster.Config) localcluster.GuardStatus {
	return localcluster.GuardStatus{Table: "inet podnet-guard-" + c.ID(), Installed: true, Group: filepath.Join(c.StateDir, "net_cls", "podnet-"+c.Name),
		ClassID: "0x70123456", Processes: 4, DroppedPackets: 2, DroppedBytes: 120}
}

func runStatus(t *testing.T, cfg *localcluster.Config, client kubernetes.Interface, args ...string) (string, error) {
	t.Helper()
	cmd := newStatusCommandWith(func() (*localcluster.Config, kubernetes.Interface, error) { return cfg, client, nil },
		func(ctx context.Context, c *localcluster.Config, k kubernetes.Interface) (*localcluster.Status, error) {
			return localcluster.ReadStatusWith(ctx, c, k, func(context.Context, *localcluster.Config) localcluster.GuardStatus {
				return testGuard(c)
			})
		})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs(args)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	return out.String(), err
}

// -o json and -o yaml decode into the same document, with every field.
func TestStatusOutputDecodes(t *testing.T) {
	cfg, client := statusCluster(t)
	want := localcluster.Status{
		Name: "st", APIServer: "https://172.30.0.1:6443", StateDir: cfg.StateDir, Kubeconfig: filepath.Join(cfg.StateDir, "kubeconfig"),
		ServiceProxy: "kube-proxy-nftables", NodeRuntime: "podnet",
		Addresses: localcluster.AddressPlan{PodCIDR: cfg.PodCIDR, ServiceCIDR: cfg.ServiceCIDR, NodeNetwork: cfg.NodeNetwork,
			WorldNetwork: cfg.WorldNetwork, LBPool: cfg.LBPool, ClusterDNS: cfg.DNSServiceIP()},
		Processes: []localcluster.ProcessStatus{{Name: "etcd", PID: os.Getpid(), State: "running"}},
		Nodes: []localcluster.NodeStatus{
			{Name: "st-node-1", Ready: true, PodCIDRs: []string{"10.244.1.0/24"}},
			{Name: "st-node-2", Ready: false, PodCIDRs: []string{"10.244.2.0/24"}},
		},
		Guard: testGuard(cfg),
	}
	for format, unmarshal := range map[string]func([]byte, any) error{
		"json": json.Unmarshal,
		"yaml": func(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) },
	} {
		t.Run(format, func(t *testing.T) {
			out, err := runStatus(t, cfg, client, "-o", format)
			if err != nil {
				t.Fatal(err)
			}
			var got localcluster.Status
			if err := unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("decode: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
			}
			// The field names are the interface: a script reads these.
			for _, key := range []string{"apiServer", "serviceProxy", "podCIDR", "serviceCIDR", "nodeNetwork", "processes", "pid", "state", "nodes", "ready", "podCIDRs",
				"guard", "table", "installed", "group", "classID", "droppedPackets", "droppedBytes"} {
				if !strings.Contains(out, key) {
					t.Errorf("output lacks %q:\n%s", key, out)
				}
			}
		})
	}
}

// Plain text stays the default.
func TestStatusText(t *testing.T) {
	cfg, client := statusCluster(t)
	out, err := runStatus(t, cfg, client)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"cluster st: API https://172.30.0.1:6443, pods 10.244.0.0/16, services 10.96.0.0/16, nodes on 172.30.0.0/24\n",
		"  service proxy: kube-proxy-nftables (upstream kube-proxy in nftables mode in each node namespace; the agents' proxy is off)\n",
		"  etcd ", " running\n",
		"  node st-node-1            Ready    podCIDR 10.244.1.0/24\n",
		"  node st-node-2            NotReady podCIDR 10.244.2.0/24\n",
		"  guard inet podnet-guard-" + cfg.ID() + ": 4 processes confined, 2 packets dropped\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// A cluster started with --zones shows its zones and each node's zone, in
// text and in the document; one without shows neither (the tests above).
func TestStatusShowsZones(t *testing.T) {
	cfg := localcluster.DefaultConfig("st")
	cfg.StateDir, cfg.Nodes, cfg.Zones = t.TempDir(), 2, []string{"a", "b"}
	var objs []runtime.Object
	for i := 1; i <= cfg.Nodes; i++ {
		objs = append(objs, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: cfg.NodeName(i), Labels: cfg.NodeLabels(i)},
			Status: v1.NodeStatus{Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}}})
	}
	client := fake.NewClientset(objs...)
	out, err := runStatus(t, cfg, client)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  zones: a, b (one node network for all; topology.kubernetes.io/region=local)\n",
		"  node st-node-1.a          Ready    zone a podCIDR none\n",
		"  node st-node-2.b          Ready    zone b podCIDR none\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, err = runStatus(t, cfg, client, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got localcluster.Status
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Zones, []string{"a", "b"}) || len(got.Nodes) != 2 || got.Nodes[0].Zone != "a" || got.Nodes[1].Zone != "b" {
		t.Errorf("decoded zones %v and nodes %+v; want zones [a b], node 1 in a, node 2 in b", got.Zones, got.Nodes)
	}
}

// A guard that is missing or cannot be read says so in capitals.
func TestStatusTextGuardStates(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    localcluster.GuardStatus
		want string
	}{
		{"installed", localcluster.GuardStatus{Table: "inet podnet-guard-abcdef", Installed: true, Processes: 4},
			"inet podnet-guard-abcdef: 4 processes confined, 0 packets dropped"},
		{"not installed", localcluster.GuardStatus{Table: "inet podnet-guard-abcdef"}, "inet podnet-guard-abcdef: NOT INSTALLED"},
		{"unreadable", localcluster.GuardStatus{Table: "inet podnet-guard-abcdef", Error: "nft: permission denied"},
			"inet podnet-guard-abcdef: UNKNOWN: nft: permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := guardText(tc.g); got != tc.want {
				t.Errorf("guardText = %q, want %q", got, tc.want)
			}
		})
	}
}

// Without the API server the processes are still printed, and it fails.
func TestStatusWithoutAPIServer(t *testing.T) {
	cfg, _ := statusCluster(t)
	client := fake.NewClientset()
	client.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	out, err := runStatus(t, cfg, client, "-o", "json")
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err %v, want the API server's", err)
	}
	var got localcluster.Status
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Processes) != 1 || len(got.Nodes) != 0 {
		t.Fatalf("decoded %+v, %v; want the process and no nodes", got, err)
	}
}

func TestStatusRejectsUnknownFormat(t *testing.T) {
	cfg, client := statusCluster(t)
	out, err := runStatus(t, cfg, client, "-o", "wide")
	if err == nil || !strings.Contains(err.Error(), `-o "wide"`) || out != "" {
		t.Fatalf("status -o wide: %q, %v; want an error and no output", out, err)
	}
}

// podnet clusters lists what is saved under the state root.
func TestClustersCommand(t *testing.T) {
	root := t.TempDir()
	old := stateRoot
	stateRoot = root
	t.Cleanup(func() { stateRoot = old })

	out, err := runRoot(t, "clusters")
	if err != nil || !strings.Contains(out, "no local clusters under "+root) {
		t.Fatalf("clusters on an empty root: %q, %v", out, err)
	}
	for _, name := range []string{"beta", "alpha"} {
		cfg := localcluster.DefaultConfig(name)
		cfg.StateDir = filepath.Join(root, name)
		if err := cfg.Save(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := proc.Adopt(filepath.Join(root, "beta", "procs"), "etcd", os.Getpid(), []string{"etcd"}); err != nil {
		t.Fatal(err)
	}
	out, err = runRoot(t, "clusters")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := [][]string{
		{"NAME", "NODES", "STATE", "API", "SERVER", "STATE", "DIR"},
		{"alpha", "2", "stopped", "https://172.30.0.1:6443", filepath.Join(root, "alpha")},
		{"beta", "2", "running", "https://172.30.0.1:6443", filepath.Join(root, "beta")},
	}
	if len(lines) != len(want) {
		t.Fatalf("podnet clusters:\n%s\nwant %d lines", out, len(want))
	}
	for i, l := range lines {
		if got := strings.Fields(l); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("line %d: %q, want %q", i, got, want[i])
		}
	}

	// The state root is where the cluster commands look too.
	_, err = runRoot(t, "status", "--cluster", "gamma")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "gamma")) {
		t.Errorf("status --cluster gamma: %v, want it to look in %s", err, filepath.Join(root, "gamma"))
	}
}
