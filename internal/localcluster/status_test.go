package localcluster

import (
	"github.com/podnet/podnet/internal/localcluster/plan"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/localcluster/guard"

	"github.com/podnet/podnet/internal/proc"
)

// recordProcs writes process records into c's state: this test process
// under each name in alive, and under each name in dead a record of this
// pid with a start time it does not have (a process that is gone).
func recordProcs(t *testing.T, c *Config, alive, dead []string) {
	t.Helper()
	for _, name := range alive {
		if _, err := proc.Adopt(c.ProcsDir(), name, os.Getpid(), []string{"test"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range dead {
		b, _ := json.Marshal(proc.Record{Name: name, PID: os.Getpid(), StartTime: 1})
		if err := os.MkdirAll(c.ProcsDir(), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.ProcsDir(), name+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func testNode(name, cidr, ip string, ready bool) *v1.Node {
	status := v1.ConditionFalse
	if ready {
		status = v1.ConditionTrue
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
		Status: v1.NodeStatus{
			Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: status}},
			Addresses:  []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}},
		},
	}
}

func TestStatus(t *testing.T) {
	c := DefaultConfig("st")
	c.StateDir = t.TempDir()
	recordProcs(t, c, []string{"etcd"}, []string{"kube-apiserver"})
	client := fake.NewClientset(testNode("st-node-2", "10.244.2.0/24", "172.30.0.12", false), testNode("st-node-1", "10.244.1.0/24", "172.30.0.11", true))
	got, err := ReadStatusWith(context.Background(), c, client, guardWithDrops(t, 3, 180))
	if err != nil {
		t.Fatal(err)
	}
	want := &Status{
		Name: "st", APIServer: "https://172.30.0.1:6443", StateDir: c.StateDir, Kubeconfig: filepath.Join(c.StateDir, "kubeconfig"),
		ServiceProxy: "podnet", NodeRuntime: "podnet",
		Addresses: AddressPlan{PodCIDR: c.PodCIDR, ServiceCIDR: c.ServiceCIDR, NodeNetwork: c.NodeNetwork,
			WorldNetwork: c.WorldNetwork, LBPool: c.LBPool, ClusterDNS: c.DNSServiceIP()},
		Processes: []ProcessStatus{{Name: "etcd", PID: os.Getpid(), State: StateRunning}, {Name: "kube-apiserver", PID: os.Getpid(), State: StateDead}},
		Nodes: []NodeStatus{
			{Name: "st-node-1", Ready: true, InternalIP: "172.30.0.11", PodCIDRs: []string{"10.244.1.0/24"}},
			{Name: "st-node-2", Ready: false, InternalIP: "172.30.0.12", PodCIDRs: []string{"10.244.2.0/24"}},
		},
		Guard: GuardStatus{Table: "inet podnet-guard-" + c.ID(), Installed: true, Group: filepath.Join(c.StateDir, "net_cls", "podnet-st"),
			ClassID: fmt.Sprintf("%#x", guard.ClassID(c)), DroppedPackets: 3, DroppedBytes: 180},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Status =\n%+v\nwant\n%+v", got, want)
	}
}

// guardWithDrops reads the guard of a cluster from a knftables.Fake whose
// table has dropped packets and bytes (its group is not mounted).
func guardWithDrops(t *testing.T, packets, bytes uint64) func(context.Context, *Config) GuardStatus {
	t.Helper()
	return func(ctx context.Context, c *Config) GuardStatus {
		fake := knftables.NewFake(knftables.InetFamily, guard.TableName(c))
		if err := guard.Install(ctx, fake, guard.ForCluster(c)); err != nil {
			t.Fatal(err)
		}
		fake.Table.Counters[guard.CounterDropped].Packets = &packets
		fake.Table.Counters[guard.CounterDropped].Bytes = &bytes
		return guard.ReadWith(ctx, fake, c)
	}
}

// Without the API server, the processes are still there: they say why.
func TestStatusWithoutTheAPIServer(t *testing.T) {
	c := DefaultConfig("st")
	c.StateDir = t.TempDir()
	recordProcs(t, c, nil, []string{"kube-apiserver"})
	client := fake.NewClientset()
	client.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	got, err := ReadStatus(context.Background(), c, client)
	if err == nil || !strings.Contains(err.Error(), "API server: connection refused") {
		t.Fatalf("err = %v, want the API server's error", err)
	}
	if got == nil || len(got.Processes) != 1 || got.Processes[0].State != StateDead || len(got.Nodes) != 0 {
		t.Fatalf("Status = %+v, want the dead kube-apiserver and no nodes", got)
	}
}

func TestList(t *testing.T) {
	root := t.TempDir()
	save := func(name string, nodes int) *Config {
		c := DefaultConfig(name)
		c.StateDir, c.Nodes = filepath.Join(root, name), nodes
		if err := c.Save(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	recordProcs(t, save("zeta", 3), []string{"etcd", "kube-apiserver"}, nil)
	recordProcs(t, save("alpha", 1), []string{"etcd"}, []string{"kube-apiserver"})
	save("crashed", 2)
	if err := os.MkdirAll(filepath.Join(root, "not-a-cluster"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := List(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []Summary{
		{Name: "alpha", Nodes: 1, State: ClusterDegraded, APIServer: "https://172.30.0.1:6443", StateDir: filepath.Join(root, "alpha")},
		{Name: "crashed", Nodes: 2, State: ClusterStopped, APIServer: "https://172.30.0.1:6443", StateDir: filepath.Join(root, "crashed")},
		{Name: "zeta", Nodes: 3, State: ClusterRunning, APIServer: "https://172.30.0.1:6443", StateDir: filepath.Join(root, "zeta")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List =\n%+v\nwant\n%+v", got, want)
	}

	// A broken config is reported and the others are still listed.
	if err := os.MkdirAll(filepath.Join(root, "broken"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "broken", plan.ConfigFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = List(root)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "broken")) || len(got) != 3 {
		t.Fatalf("List with a broken config = %d clusters, %v; want 3 and an error naming it", len(got), err)
	}
}

func TestListWithoutRoot(t *testing.T) {
	got, err := List(filepath.Join(t.TempDir(), "missing"))
	if err != nil || len(got) != 0 {
		t.Fatalf("List of a missing root = %v, %v; want nothing", got, err)
	}
}
