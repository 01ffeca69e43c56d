package dns

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSlimNodeKeepsWhatTheZoneReads: a Node in the cache keeps its name,
// identity and pod CIDRs and loses its status, labels and managed fields;
// slimming twice changes nothing.
func TestSlimNodeKeepsWhatTheZoneReads(t *testing.T) {
	full := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1", ResourceVersion: "7", Labels: map[string]string{"a": "b"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
		Spec: v1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00:244:1::/64"}, ProviderID: "x"},
		Status: v1.NodeStatus{Capacity: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")},
			Images: []v1.ContainerImage{{Names: []string{"registry.example/big:1"}, SizeBytes: 1 << 30}}},
	}
	want := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1", ResourceVersion: "7"},
		Spec:       v1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00:244:1::/64"}},
	}
	got, err := slimObject(full)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("slim Node = %+v, want %+v", got, want)
	}
	again, err := slimObject(got)
	if err != nil || !equality.Semantic.DeepEqual(again, want) {
		t.Errorf("slimming twice = %+v (%v), want %+v", again, err, want)
	}
	ranges := ClusterRanges(nil, []*v1.Node{got.(*v1.Node)})
	if len(ranges) != 2 {
		t.Errorf("ranges of the slim Node = %v, want its two pod CIDRs", ranges)
	}
}

func TestSameForDNS(t *testing.T) {
	node := func(rv string, cidrs ...string) *v1.Node {
		n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: rv}, Spec: v1.NodeSpec{PodCIDRs: cidrs}}
		if len(cidrs) > 0 {
			n.Spec.PodCIDR = cidrs[0]
		}
		return n
	}
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", ResourceVersion: "1"}}
	for _, tc := range []struct {
		name     string
		old, cur any
		same     bool
	}{
		{"a status update of a Node", node("1", "10.244.1.0/24"), node("2", "10.244.1.0/24"), true},
		{"a Node gets its pod CIDR", node("1"), node("2", "10.244.1.0/24"), false},
		{"a Node gets a second pod CIDR", node("1", "10.244.1.0/24"), node("2", "10.244.1.0/24", "fd00:244:1::/64"), false},
		{"any update of another kind", svc, svc, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameForDNS(tc.old, tc.cur); got != tc.same {
				t.Errorf("sameForDNS = %v, want %v", got, tc.same)
			}
		})
	}
}
