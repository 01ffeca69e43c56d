package announce

import (
	"context"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestKeyIsCreatedOnceAndShared(t *testing.T) {
	client := fake.NewClientset()
	ctx := context.Background()
	first, err := (&announceSync{client: client}).key(ctx)
	if err != nil || len(first) != 32 {
		t.Fatalf("first agent: key %x, %v", first, err)
	}
	second, err := (&announceSync{client: client}).key(ctx)
	if err != nil || string(second) != string(first) {
		t.Fatalf("second agent: key %x, %v; want the first one's", second, err)
	}
	sec, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, KeySecret, metav1.GetOptions{})
	if err != nil || string(sec.Data["key"]) != string(first) {
		t.Fatalf("secret: %v, %v", sec, err)
	}
}

func TestKeyLivesInTheNamespaceTheAgentIsGiven(t *testing.T) {
	client := fake.NewClientset()
	ctx := context.Background()
	key, err := (&announceSync{client: client, cfg: ControllerConfig{KeyNamespace: "podnet-system"}}).key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := client.CoreV1().Secrets("podnet-system").Get(ctx, KeySecret, metav1.GetOptions{})
	if err != nil || string(sec.Data["key"]) != string(key) {
		t.Fatalf("podnet-system/%s: %v, %v", KeySecret, sec, err)
	}
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, KeySecret, metav1.GetOptions{}); err == nil {
		t.Errorf("a Secret was made in kube-system too")
	}
}

func TestPeersOf(t *testing.T) {
	node := func(name, ip string, ready v1.ConditionStatus) *v1.Node {
		return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1.NodeStatus{
			Addresses:  []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}},
			Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: ready}},
		}}
	}
	peers, ready := peersOf([]*v1.Node{node("a", "172.30.0.11", v1.ConditionTrue), node("b", "172.30.0.12", v1.ConditionFalse),
		node("c", "fd00::13", v1.ConditionTrue)}, 4)
	if len(peers) != 2 || peers["a"].String() != "172.30.0.11" || peers["b"].String() != "172.30.0.12" {
		t.Errorf("peers = %v: want a and b (IPv4), not-Ready b included (it may still beat)", peers)
	}
	if !slices.Equal(ready, []string{"a", "c"}) {
		t.Errorf("ready = %v, want [a c]", ready)
	}
	if !sameNodeView(node("a", "172.30.0.11", v1.ConditionTrue), node("a", "172.30.0.11", v1.ConditionTrue)) {
		t.Error("an unchanged node is not ignored")
	}
	if sameNodeView(node("a", "172.30.0.11", v1.ConditionTrue), node("a", "172.30.0.11", v1.ConditionFalse)) {
		t.Error("a readiness change is ignored")
	}
}
