package podruntime

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/internal/version"
)

const (
	leaseDuration     = 40
	heartbeatInterval = 10 * time.Second
)

// networkReady reports whether a CNI conflist exists (containerd's notion of
// NetworkReady).
func (r *Runtime) networkReady() (bool, string) {
	m, _ := filepath.Glob(filepath.Join(r.cfg.CNIConfDir, "*.conflist"))
	if len(m) == 0 {
		return false, "no CNI configuration in " + r.cfg.CNIConfDir + " yet (the podnet agent writes it once the node has a pod CIDR)"
	}
	return true, ""
}

func (r *Runtime) nodeStatus(now metav1.Time) v1.NodeStatus {
	ready, msg := r.networkReady()
	cond := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady",
		Message: "podnet pod runtime is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}
	if !ready {
		cond.Status, cond.Reason, cond.Message = v1.ConditionFalse, "NetworkPluginNotReady", msg
	}
	capacity := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		v1.ResourceMemory: resource.MustParse("8Gi"),
		v1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	hostname, _ := os.Hostname()
	return v1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Conditions: []v1.NodeCondition{cond,
			{Type: v1.NodeMemoryPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: v1.NodeDiskPressure, Status: v1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: v1.NodePIDPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
		},
		Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: r.cfg.NodeIP.String()},
			{Type: v1.NodeHostName, Address: r.cfg.NodeName},
		},
		NodeInfo: v1.NodeSystemInfo{
			OperatingSystem: "linux", Architecture: runtime.GOARCH, KernelVersion: kernelVersion(),
			OSImage: "podnet local node (" + hostname + ")", ContainerRuntimeVersion: "podnet://" + version.Version,
			KubeletVersion: "podnet-" + version.Version,
		},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(r.apiPort)}},
	}
}

func kernelVersion() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return string(b[:len(b)-1])
}

// registerNode creates the Node, or, if it exists, puts back the labels
// it registers with (as the kubelet does for its default labels) and
// updates its status.
func (r *Runtime) registerNode(ctx context.Context) error {
	now := metav1.Now()
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: r.cfg.NodeName, Labels: r.nodeLabels()},
		Status:     r.nodeStatus(now),
	}
	_, err := r.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		err = r.reconcileNodeLabels(ctx)
	}
	if err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	return r.updateNodeStatus(ctx)
}

// nodeLabels are the labels the Node registers with: the kubelet's
// defaults (hostname, os, arch) and Config.NodeLabels.
func (r *Runtime) nodeLabels() map[string]string {
	l := map[string]string{v1.LabelHostname: r.cfg.NodeName, v1.LabelOSStable: "linux", v1.LabelArchStable: runtime.GOARCH}
	maps.Copy(l, r.cfg.NodeLabels)
	return l
}

// reconcileNodeLabels sets the registration labels an existing Node lacks
// or has other values of, and leaves every other label alone.
func (r *Runtime) reconcileNodeLabels(ctx context.Context) error {
	n, err := r.client.CoreV1().Nodes().Get(ctx, r.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	changed := false
	for k, v := range r.nodeLabels() {
		if old, ok := n.Labels[k]; !ok || old != v {
			if n.Labels == nil {
				n.Labels = map[string]string{}
			}
			n.Labels[k], changed = v, true
		}
	}
	if !changed {
		return nil
	}
	_, err = r.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
	return err
}

func (r *Runtime) updateNodeStatus(ctx context.Context) error {
	n, err := r.client.CoreV1().Nodes().Get(ctx, r.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	old := map[v1.NodeConditionType]v1.NodeCondition{}
	for _, c := range n.Status.Conditions {
		old[c.Type] = c
	}
	st := r.nodeStatus(metav1.Now())
	for i, c := range st.Conditions {
		if o, ok := old[c.Type]; ok && o.Status == c.Status {
			st.Conditions[i].LastTransitionTime = o.LastTransitionTime
		}
	}
	n.Status.Conditions, n.Status.Addresses, n.Status.Capacity, n.Status.Allocatable, n.Status.NodeInfo =
		st.Conditions, st.Addresses, st.Capacity, st.Allocatable, st.NodeInfo
	n.Status.DaemonEndpoints = st.DaemonEndpoints
	_, err = r.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

// renewLease keeps the node's Lease in kube-node-lease fresh.
func renewLease(ctx context.Context, c kubernetes.Interface, node string) error {
	leases := c.CoordinationV1().Leases(v1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: v1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node), LeaseDurationSeconds: ptr.To[int32](leaseDuration),
				AcquireTime: &now, RenewTime: &now},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = ptr.To(node), ptr.To[int32](leaseDuration), &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// heartbeat renews the lease and refreshes node status until ctx ends.
// After a failed renewal it tries again every second rather than at the
// next heartbeat: when the API server comes back from an outage longer
// than the node controller's grace period, every second the lease stays
// stale is a chance for kube-controller-manager to mark the node, and
// every pod on it, not Ready.
func (r *Runtime) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	lastReady, _ := r.networkReady()
	fast := time.NewTicker(time.Second)
	defer fast.Stop()
	failed := false
	beat := func() {
		err := renewLease(ctx, r.client, r.cfg.NodeName)
		if err != nil && !failed {
			r.log.Warn("renew lease; trying again every second", "err", err)
		}
		if err == nil && failed {
			r.log.Info("lease renewed again")
		}
		failed = err != nil
		if err := r.updateNodeStatus(ctx); err != nil && !failed {
			r.log.Warn("node status", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-fast.C:
			// Report network readiness as soon as the conflist appears.
			if ready, _ := r.networkReady(); ready != lastReady {
				lastReady = ready
				if err := r.updateNodeStatus(ctx); err != nil {
					r.log.Warn("node status", "err", err)
				}
				r.pokeAll()
			}
			if failed {
				beat()
			}
		case <-t.C:
			beat()
		}
	}
}
