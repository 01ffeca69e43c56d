package localcluster

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/localcluster/crinode"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/podruntime"
)

// PodLocation is where a pod of a local cluster lives: what `podnet exec`,
// `probe` and `logs` need to enter it or read its files.
type PodLocation struct {
	Namespace, Name, UID string
	// Node is the pod's Node name; NodeIndex its number (1-based).
	Node      string
	NodeIndex int
	// HostNetwork pods share their node's network namespace (and its
	// /etc/hosts and hostname).
	HostNetwork bool
	PodIP       string
	// Dir is the pod's directory on its node: resolv.conf, hosts, logs/.
	// On containerd nodes it is a container's /etc (resolv.conf and hosts;
	// the kubelet keeps the logs: kubectl logs).
	Dir string
	// NetNS is the path of the network namespace the pod's containers run
	// in: the pod's own, or its node's for a hostNetwork pod.
	NetNS string
}

// FindPod looks up pod ns/name with client and finds where cfg's cluster
// keeps it. It fails for a pod that is not scheduled yet or that runs on a
// node that is not one of cfg's.
func FindPod(ctx context.Context, client kubernetes.Interface, cfg *Config, ns, name string) (PodLocation, error) {
	p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return PodLocation{}, fmt.Errorf("find pod %s/%s: %w", ns, name, err)
	}
	if p.Spec.NodeName == "" {
		return PodLocation{}, fmt.Errorf("pod %s/%s is not scheduled yet", ns, name)
	}
	loc := PodLocation{Namespace: ns, Name: name, UID: string(p.UID), Node: p.Spec.NodeName,
		HostNetwork: p.Spec.HostNetwork, PodIP: p.Status.PodIP}
	for i := 1; i <= cfg.Nodes; i++ {
		if cfg.NodeName(i) == p.Spec.NodeName {
			loc.NodeIndex = i
		}
	}
	if loc.NodeIndex == 0 {
		return PodLocation{}, fmt.Errorf("pod %s/%s runs on %s, which is not a node of cluster %s", ns, name, p.Spec.NodeName, cfg.Name)
	}
	loc.Dir = podruntime.PodDir(cfg.NodeDir(loc.NodeIndex), ns, name, loc.UID)
	loc.NetNS = netns.Path(cfg.PodNSName(loc.UID))
	if loc.HostNetwork {
		loc.NetNS = netns.Path(cfg.NodeNSName(loc.NodeIndex))
	} else if cfg.Containerd() {
		// containerd keeps the pod's namespace in the node's own /run; a
		// process of the pod (found by its cgroup) names it from here.
		pid, err := crinode.PodPID((&crinode.Node{Name: loc.Node}).CgroupRoot(), loc.UID)
		if err != nil {
			return PodLocation{}, fmt.Errorf("pod %s/%s: %w", ns, name, err)
		}
		loc.Dir, loc.NetNS = fmt.Sprintf("/proc/%d/root/etc", pid), fmt.Sprintf("/proc/%d/ns/net", pid)
	}
	return loc, nil
}
