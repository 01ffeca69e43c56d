package localcluster

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

func TestFindPod(t *testing.T) {
	cfg := DefaultConfig("pnt")
	cfg.Nodes = 3
	pod := func(name, node string, hostNet bool) *v1.Pod {
		return &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: name, UID: types.UID("3f2a6b1c-8d4e-4a5b-9c0d-" + name)},
			Spec:       v1.PodSpec{NodeName: node, HostNetwork: hostNet},
			Status:     v1.PodStatus{PodIP: "10.244.2.7"},
		}
	}
	client := fake.NewClientset(
		pod("on-the-last-node", "pnt-node-3", false),
		pod("host-network", "pnt-node-1", true),
		pod("pending", "", false),
		pod("elsewhere", "other-node-1", false),
	)
	for _, tc := range []struct {
		name, pod string
		want      PodLocation
		err       string
	}{
		{name: "a pod on the last node is in its own namespace", pod: "on-the-last-node", want: PodLocation{
			Namespace: "web", Name: "on-the-last-node", UID: "3f2a6b1c-8d4e-4a5b-9c0d-on-the-last-node",
			Node: "pnt-node-3", NodeIndex: 3, PodIP: "10.244.2.7",
			Dir:   "/var/lib/podnet/pnt/nodes/pnt-node-3/pods/web_on-the-last-node_3f2a6b1c-8d4e-4a5b-9c0d-on-the-last-node",
			NetNS: "/run/netns/pnt-pod-3f2a6b1c8d4e",
		}},
		{name: "a hostNetwork pod is in its node's namespace", pod: "host-network", want: PodLocation{
			Namespace: "web", Name: "host-network", UID: "3f2a6b1c-8d4e-4a5b-9c0d-host-network",
			Node: "pnt-node-1", NodeIndex: 1, HostNetwork: true, PodIP: "10.244.2.7",
			Dir:   "/var/lib/podnet/pnt/nodes/pnt-node-1/pods/web_host-network_3f2a6b1c-8d4e-4a5b-9c0d-host-network",
			NetNS: "/run/netns/pnt-node-1",
		}},
		{name: "an unscheduled pod is an error", pod: "pending", err: "pod web/pending is not scheduled yet"},
		{name: "a pod on another cluster's node is an error", pod: "elsewhere", err: "runs on other-node-1, which is not a node of cluster pnt"},
		{name: "a missing pod is an error", pod: "nobody", err: `find pod web/nobody: pods "nobody" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindPod(context.Background(), client, cfg, "web", tc.pod)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("FindPod = %+v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("FindPod =\n  %+v\nwant\n  %+v", got, tc.want)
			}
		})
	}
	if _, err := FindPod(context.Background(), client, cfg, "web", "nobody"); !apierrors.IsNotFound(err) {
		t.Errorf("a missing pod: %v, want an error that is NotFound", err)
	}
}
