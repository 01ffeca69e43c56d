package deploy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/internal/lb/announce"
	"github.com/podnet/podnet/internal/localcluster/addons"
	"github.com/podnet/podnet/internal/wireguard"
)

// rendered decodes podnet.yaml (equal to the kustomize build, see
// TestRenderedManifestIsTheKustomizeBuildOfDeploy).
func rendered(t *testing.T) []Object {
	t.Helper()
	objs, err := Decode(Rendered)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func get[T any](t *testing.T, objs []Object, kind, ns, name string) T {
	t.Helper()
	o, ok := Find(objs, kind, ns, name).(T)
	if !ok {
		t.Fatalf("no %s %s/%s", kind, ns, name)
	}
	return o
}

// grants expands rules into "group/resource/verb[/name]" lines, sorted.
func grants(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					for _, n := range names {
						out = append(out, strings.TrimSuffix(fmt.Sprintf("%s/%s/%s/%s", g, res, v, n), "/"))
					}
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func fromApply(acs []*rbacv1ac.PolicyRuleApplyConfiguration) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, a := range acs {
		out = append(out, rbacv1.PolicyRule{APIGroups: a.APIGroups, Resources: a.Resources, Verbs: a.Verbs, ResourceNames: a.ResourceNames})
	}
	return out
}

// boundTo checks that a binding of kind (ClusterRoleBinding or
// RoleBinding) named like the role grants it to the ServiceAccount.
func boundTo(t *testing.T, objs []Object, kind, ns, name, saNS, sa string) {
	t.Helper()
	var ref rbacv1.RoleRef
	var subjects []rbacv1.Subject
	if kind == "ClusterRoleBinding" {
		b := get[*rbacv1.ClusterRoleBinding](t, objs, kind, ns, name)
		ref, subjects = b.RoleRef, b.Subjects
	} else {
		b := get[*rbacv1.RoleBinding](t, objs, kind, ns, name)
		ref, subjects = b.RoleRef, b.Subjects
	}
	want := rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: saNS}
	if ref.Name != name || len(subjects) != 1 || subjects[0] != want {
		t.Errorf("%s %s: %v to %v, want %s to %v", kind, name, ref, subjects, name, want)
	}
	get[*v1.ServiceAccount](t, objs, "ServiceAccount", saNS, sa)
}

// TestRBACGrantsEachComponentWhatItUsesAndNoMore: the LoadBalancer
// controller and the DNS get exactly the rules `podnet up` grants them
// (addons.LBRBACRules, DNSRBACRules); the Roles hold only the Lease and the
// heartbeat key. The agent's ClusterRole is checked against the informers
// it starts in internal/agent (TestAgentClusterRoleIsWhatItsInformersRead).
func TestRBACGrantsEachComponentWhatItUsesAndNoMore(t *testing.T) {
	objs := rendered(t)
	for _, tc := range []struct {
		role, saNS string
		want       []rbacv1.PolicyRule
	}{
		{"podnet-lb-controller", "podnet-system", fromApply(addons.LBRBACRules())},
		{"podnet-dns", "kube-system", fromApply(addons.DNSRBACRules())},
	} {
		cr := get[*rbacv1.ClusterRole](t, objs, "ClusterRole", "", tc.role)
		if got, want := grants(cr.Rules), grants(tc.want); !slices.Equal(got, want) {
			t.Errorf("ClusterRole %s grants\n  %v\nwant\n  %v", tc.role, got, want)
		}
		boundTo(t, objs, "ClusterRoleBinding", "", tc.role, tc.saNS, tc.role)
	}
	for _, tc := range []struct {
		role, ns string
		want     []string
	}{
		// leaderelection's LeaseLock gets, creates and updates its Lease
		// (addons.ApplyLBRBAC grants the same).
		{"podnet-lb-controller", "podnet-system", []string{"coordination.k8s.io/leases/create", "coordination.k8s.io/leases/get", "coordination.k8s.io/leases/update"}},
		// The heartbeat key: read by name, created by the first agent.
		{"podnet-agent", "podnet-system", []string{"/secrets/create", "/secrets/get/" + announce.KeySecret}},
	} {
		r := get[*rbacv1.Role](t, objs, "Role", tc.ns, tc.role)
		if got := grants(r.Rules); !slices.Equal(got, tc.want) {
			t.Errorf("Role %s/%s grants %v, want %v", tc.ns, tc.role, got, tc.want)
		}
		boundTo(t, objs, "RoleBinding", tc.ns, tc.role, tc.ns, tc.role)
	}
	boundTo(t, objs, "ClusterRoleBinding", "", "podnet-agent", "podnet-system", "podnet-agent")
	for _, o := range objs {
		if cr, ok := o.Obj.(*rbacv1.ClusterRole); ok {
			for _, g := range grants(cr.Rules) {
				if strings.Contains(g, "*") || strings.Contains(g, "secrets") {
					t.Errorf("ClusterRole %s grants %s", cr.Name, g)
				}
			}
		}
	}
}

func container(t *testing.T, cs []v1.Container, name string) v1.Container {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return v1.Container{}
}

// hasArg says whether c's command and args hold arg.
func hasArg(c v1.Container, arg string) bool {
	return slices.Contains(append(slices.Clone(c.Command), c.Args...), arg)
}

func TestAgentDaemonSetKeepsEveryNodesNetworkUp(t *testing.T) {
	objs := rendered(t)
	ds := get[*appsv1.DaemonSet](t, objs, "DaemonSet", "podnet-system", "podnet-agent")
	spec := ds.Spec.Template.Spec
	if len(spec.Tolerations) != 1 || spec.Tolerations[0] != (v1.Toleration{Operator: v1.TolerationOpExists}) {
		t.Errorf("tolerations %v, want only {operator: Exists} (every taint, not-ready and unreachable included)", spec.Tolerations)
	}
	if !spec.HostNetwork || spec.DNSPolicy != v1.DNSClusterFirstWithHostNet || spec.PriorityClassName != "system-node-critical" {
		t.Errorf("hostNetwork %v, dnsPolicy %s, priority %s", spec.HostNetwork, spec.DNSPolicy, spec.PriorityClassName)
	}
	if g := spec.TerminationGracePeriodSeconds; g == nil || *g > 30 {
		t.Errorf("terminationGracePeriodSeconds %v, want a small one", g)
	}
	u := ds.Spec.UpdateStrategy
	if u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil ||
		u.RollingUpdate.MaxUnavailable.String() != "1" || u.RollingUpdate.MaxSurge.String() != "0" {
		t.Errorf("updateStrategy %+v, want RollingUpdate maxUnavailable 1 maxSurge 0", u)
	}
	agent := container(t, spec.Containers, "agent")
	install := container(t, spec.InitContainers, "install-cni")
	for _, c := range []struct {
		c    v1.Container
		caps []v1.Capability
	}{{agent, []v1.Capability{"NET_ADMIN", "NET_RAW"}}, {install, nil}} {
		sc := c.c.SecurityContext
		if sc == nil || sc.Capabilities == nil || (sc.Privileged != nil && *sc.Privileged) ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			!slices.Equal(sc.Capabilities.Drop, []v1.Capability{"ALL"}) || !slices.Equal(sc.Capabilities.Add, c.caps) {
			t.Errorf("%s: securityContext %+v, want not privileged, drop ALL, add %v", c.c.Name, sc, c.caps)
		}
	}
	if !slices.Equal(install.Command, []string{"podnet", "install-cni", "--cni-bin-dir=/opt/cni/bin"}) {
		t.Errorf("init container runs %v", install.Command)
	}
	if e := agent.Env[0]; e.Name != "NODE_NAME" || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("first env %+v, want NODE_NAME from spec.nodeName", e)
	}
	for _, p := range []struct {
		name string
		pr   *v1.Probe
		path string
	}{{"readiness", agent.ReadinessProbe, "/readyz"}, {"liveness", agent.LivenessProbe, "/livez"}} {
		if p.pr == nil || p.pr.HTTPGet == nil || p.pr.HTTPGet.Path != p.path || p.pr.HTTPGet.Port.IntValue() != 10264 {
			t.Errorf("%s probe %+v, want GET %s on 10264", p.name, p.pr, p.path)
		}
	}
	if !hasArg(agent, "--metrics-addr=:10264") {
		t.Errorf("the probes' port 10264 is not the agent's --metrics-addr: %v", agent.Args)
	}
	hostPaths(t, spec, map[string]string{"/opt/cni/bin": "install-cni", "/etc/cni/net.d": "agent", wireguardKeyDir: "agent"},
		map[string]string{wireguardSocketDir: "agent"})
	if !hasArg(agent, "--cni-conf-dir=/etc/cni/net.d") {
		t.Errorf("the agent writes its conflist elsewhere than its mount: %v", agent.Args)
	}
}

// hostPaths checks that the pod mounts exactly want (host path →
// container), each at the same path inside, and the emptyDirs
// wantEmpty (mount path → container).
func hostPaths(t *testing.T, spec v1.PodSpec, want, wantEmpty map[string]string) {
	t.Helper()
	vols, empty := map[string]string{}, map[string]bool{}
	for _, v := range spec.Volumes {
		switch {
		case v.HostPath != nil:
			vols[v.Name] = v.HostPath.Path
		case v.EmptyDir != nil:
			empty[v.Name] = true
		default:
			t.Errorf("volume %s is neither a hostPath nor an emptyDir", v.Name)
		}
	}
	got, gotEmpty := map[string]string{}, map[string]string{}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if empty[m.Name] {
				gotEmpty[m.MountPath] = c.Name
				continue
			}
			if vols[m.Name] != m.MountPath {
				t.Errorf("%s mounts host %s at %s, want the same path", c.Name, vols[m.Name], m.MountPath)
			}
			got[vols[m.Name]] = c.Name
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(vols) != len(want) {
		t.Errorf("host paths %v (volumes %v), want %v", got, vols, want)
	}
	if fmt.Sprint(gotEmpty) != fmt.Sprint(wantEmpty) || len(empty) != len(wantEmpty) {
		t.Errorf("emptyDirs mounted at %v (volumes %v), want %v", gotEmpty, empty, wantEmpty)
	}
}

// The agent's WireGuard files: the key's directory on the node, and the
// directory of the user-space device's control socket, which
// wireguard-go fixes (its ipc package's socketDirectory).
const (
	wireguardKeyDir    = "/var/lib/podnet/wireguard"
	wireguardSocketDir = "/var/run/wireguard"
)

// TestAgentCanEncryptWithoutMorePrivilege: encryption is a ConfigMap
// setting away. The key file the agent is told to use lies in a hostPath
// that the node keeps (DirectoryOrCreate: the node need not prepare it),
// the control socket's directory is writable under the read-only root,
// the WireGuard port is declared, and nothing of it makes the agent
// privileged: no /dev/net/tun in the base (a node without TUN would not
// start the agent), no hostPath of another type.
func TestAgentCanEncryptWithoutMorePrivilege(t *testing.T) {
	objs := rendered(t)
	ds := get[*appsv1.DaemonSet](t, objs, "DaemonSet", "podnet-system", "podnet-agent")
	spec := ds.Spec.Template.Spec
	agent := container(t, spec.Containers, "agent")
	if !hasArg(agent, "--wireguard-key-file="+wireguard.DefaultKeyFile) || filepath.Dir(wireguard.DefaultKeyFile) != wireguardKeyDir {
		t.Errorf("the agent's key file is not in the mounted %s: %v", wireguardKeyDir, agent.Args)
	}
	for _, v := range spec.Volumes {
		hp := v.HostPath
		if hp == nil {
			continue
		}
		if typ := ptr.Deref(hp.Type, "(none)"); typ != v1.HostPathDirectoryOrCreate {
			t.Errorf("volume %s (%s): type %q, want DirectoryOrCreate (a device type fails the pod on a node without one; no type lets the runtime make a directory in its place)", v.Name, hp.Path, typ)
		}
		if strings.HasPrefix(hp.Path, "/dev") {
			t.Errorf("volume %s mounts %s into every agent", v.Name, hp.Path)
		}
	}
	var wg []string
	for _, p := range agent.Ports {
		if p.Name == "wireguard" {
			wg = append(wg, fmt.Sprintf("%s/%d", p.Protocol, p.ContainerPort))
		}
	}
	if want := fmt.Sprintf("UDP/%d", wireguard.DefaultPort); !slices.Equal(wg, []string{want}) {
		t.Errorf("port wireguard %v, want %s (the agent's --wireguard-port default)", wg, want)
	}
	cm := get[*v1.ConfigMap](t, objs, "ConfigMap", "podnet-system", "podnet-config")
	for k, want := range map[string]string{"encryption": "", "encryption-strict": "false", "wireguard-key-rotation": "0", "wireguard-implementation": "auto"} {
		if got, ok := cm.Data[k]; !ok || got != want {
			t.Errorf("podnet-config %s = %q (present %v), want %q: encryption is off until a cluster turns it on", k, got, ok, want)
		}
	}
}

// TestSettingsComeFromAConfigMapKeyThatExists: every configMapKeyRef
// names podnet-config in the pod's namespace and a key that is there,
// not optional (a missing key would reach the args as "$(VAR)").
func TestSettingsComeFromAConfigMapKeyThatExists(t *testing.T) {
	objs := rendered(t)
	used := map[string]map[string]bool{}
	for _, o := range objs {
		spec, ok := o.PodSpec()
		if !ok {
			continue
		}
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.ConfigMapKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.ConfigMapKeyRef
				cm, _ := Find(objs, "ConfigMap", o.Namespace, ref.Name).(*v1.ConfigMap)
				if ref.Name != "podnet-config" || cm == nil {
					t.Errorf("%s/%s %s: ConfigMap %s is not in its namespace", o.Kind, o.Name, e.Name, ref.Name)
					continue
				}
				if _, ok := cm.Data[ref.Key]; !ok || (ref.Optional != nil && *ref.Optional) {
					t.Errorf("%s/%s %s: key %s missing or optional", o.Kind, o.Name, e.Name, ref.Key)
				}
				// The key reaches the flag of its name (less the DNS's
				// "dns-"), not another one.
				if arg := "--" + strings.TrimPrefix(ref.Key, "dns-") + "=$(" + e.Name + ")"; !hasArg(c, arg) {
					t.Errorf("%s/%s %s: key %s is not passed as %s: %v", o.Kind, o.Name, c.Name, ref.Key, arg, c.Args)
				}
				if used[o.Namespace] == nil {
					used[o.Namespace] = map[string]bool{}
				}
				used[o.Namespace][ref.Key] = true
			}
		}
	}
	for _, ns := range []string{"podnet-system", "kube-system"} {
		cm := get[*v1.ConfigMap](t, objs, "ConfigMap", ns, "podnet-config")
		for k := range cm.Data {
			if !used[ns][k] {
				t.Errorf("ConfigMap %s/podnet-config: key %s is read by no pod", ns, k)
			}
		}
	}
}

func TestClusterDNSIsADropInForCoreDNS(t *testing.T) {
	objs := rendered(t)
	dep := get[*appsv1.Deployment](t, objs, "Deployment", "kube-system", "podnet-dns")
	svc := get[*v1.Service](t, objs, "Service", "kube-system", "kube-dns")
	pdb := get[*policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", "kube-system", "podnet-dns")
	spec := dep.Spec.Template.Spec
	pods := labels.Set(dep.Spec.Template.Labels)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", dep.Spec.Replicas)
	}
	if svc.Labels["k8s-app"] != "kube-dns" || !labels.SelectorFromSet(svc.Spec.Selector).Matches(pods) || svc.Spec.ClusterIP == "" {
		t.Errorf("Service kube-dns: labels %v, selector %v, clusterIP %q; pods %v", svc.Labels, svc.Spec.Selector, svc.Spec.ClusterIP, pods)
	}
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s/%d/%s", p.Protocol, p.Port, p.TargetPort.String()))
	}
	if want := []string{"UDP/53/dns", "TCP/53/dns-tcp", "TCP/9153/metrics"}; !slices.Equal(ports, want) {
		t.Errorf("kube-dns ports %v, want %v", ports, want)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.Selector == nil ||
		!labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(pods) || pdb.Spec.Selector.MatchLabels["k8s-app"] != "kube-dns" {
		t.Errorf("PDB %+v, want maxUnavailable 1 over the DNS pods", pdb.Spec)
	}
	aa := spec.Affinity
	if aa == nil || aa.PodAntiAffinity == nil || len(aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("affinity %+v, want pod anti-affinity by hostname", aa)
	}
	if spec.PriorityClassName != "system-cluster-critical" || spec.DNSPolicy != v1.DNSDefault {
		t.Errorf("priority %q dnsPolicy %q", spec.PriorityClassName, spec.DNSPolicy)
	}
	var tol []string
	for _, t := range spec.Tolerations {
		tol = append(tol, t.Key)
	}
	if !slices.Equal(tol, []string{"CriticalAddonsOnly", "node-role.kubernetes.io/control-plane"}) {
		t.Errorf("tolerations %v", tol)
	}
	dns := container(t, spec.Containers, "dns")
	if !hasArg(dns, "--health-listen=:9153") || dns.ReadinessProbe == nil || dns.ReadinessProbe.HTTPGet.Path != "/ready" ||
		dns.LivenessProbe == nil || dns.LivenessProbe.HTTPGet.Path != "/health" {
		t.Errorf("dns probes %+v %+v, args %v", dns.ReadinessProbe, dns.LivenessProbe, dns.Args)
	}
	for _, p := range dns.Ports {
		if p.Name == "metrics" && p.ContainerPort != 9153 {
			t.Errorf("the metrics port is %d, not --health-listen's 9153", p.ContainerPort)
		}
	}
}
