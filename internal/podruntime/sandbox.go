package podruntime

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/netns"
)

// sandbox is a pod's network: its namespace and addresses.
type sandbox struct {
	nsName string
	nsPath string // empty for host-network pods
	ips    []netip.Addr
	dir    string
	resolv string
	hosts  string
}

// loadConflist returns the first conflist of the CNI configuration directory
// (lexical order, as container runtimes do).
func (r *Runtime) loadConflist() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(r.cfg.CNIConfDir, []string{".conflist"})
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CNI configuration in %s", r.cfg.CNIConfDir)
	}
	return libcni.ConfListFromFile(files[0])
}

func (r *Runtime) runtimeConf(pod *v1.Pod, nsPath string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: string(pod.UID),
		NetNS:       nsPath,
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", string(pod.UID)},
			{"K8S_POD_UID", string(pod.UID)},
		},
	}
}

// createSandbox makes the pod's namespace, wires it with CNI and writes its
// resolv.conf and hosts. On error it undoes what it made.
func (r *Runtime) createSandbox(ctx context.Context, pod *v1.Pod) (sb *sandbox, err error) {
	sb = &sandbox{dir: r.cfg.podDir(pod.Namespace, pod.Name, string(pod.UID))}
	if err := os.MkdirAll(filepath.Join(sb.dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	sb.resolv = filepath.Join(sb.dir, "resolv.conf")
	sb.hosts = filepath.Join(sb.dir, "hosts")
	if pod.Spec.HostNetwork {
		sb.ips = []netip.Addr{r.cfg.NodeIP}
	} else {
		list, err := r.loadConflist()
		if err != nil {
			return nil, err
		}
		sb.nsName = NetNSName(r.cfg.NetNSPrefix, string(pod.UID))
		_ = netns.Delete(sb.nsName) // debris of an earlier runtime
		if sb.nsPath, err = netns.Create(sb.nsName); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				_ = r.cni.DelNetworkList(context.Background(), list, r.runtimeConf(pod, sb.nsPath))
				_ = netns.Delete(sb.nsName)
			}
		}()
		res, err := r.cni.AddNetworkList(ctx, list, r.runtimeConf(pod, sb.nsPath))
		if err != nil {
			return nil, fmt.Errorf("CNI ADD: %w", err)
		}
		r100, err := types100.NewResultFromResult(res)
		if err != nil {
			return nil, fmt.Errorf("CNI result: %w", err)
		}
		for _, ip := range r100.IPs {
			if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
				sb.ips = append(sb.ips, a.Unmap())
			}
		}
		if len(sb.ips) == 0 {
			return nil, errors.New("CNI ADD returned no address")
		}
	}
	if err := os.WriteFile(sb.resolv, []byte(r.resolvConf(pod)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(sb.hosts, []byte(hostsFile(pod, sb.ips, r.cfg.ClusterDomain)), 0o644); err != nil {
		return nil, err
	}
	return sb, nil
}

// teardownSandbox calls CNI DEL and removes the namespace; missing pieces
// are not errors.
func (r *Runtime) teardownSandbox(ctx context.Context, pod *v1.Pod, sb *sandbox) error {
	if sb == nil || sb.nsPath == "" {
		return nil
	}
	var errs []error
	if list, err := r.loadConflist(); err == nil {
		if err := r.cni.DelNetworkList(ctx, list, r.runtimeConf(pod, sb.nsPath)); err != nil {
			errs = append(errs, fmt.Errorf("CNI DEL: %w", err))
		}
	} else {
		errs = append(errs, err)
	}
	if err := netns.Delete(sb.nsName); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// resolvConf renders /etc/resolv.conf for the pod's dnsPolicy.
func (r *Runtime) resolvConf(pod *v1.Pod) string {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = v1.DNSClusterFirst
	}
	if pod.Spec.HostNetwork && policy == v1.DNSClusterFirst {
		policy = v1.DNSDefault // as the kubelet does
	}
	var servers, searches, options []string
	switch policy {
	case v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet:
		for _, s := range r.cfg.ClusterDNS {
			servers = append(servers, s.String())
		}
		d := r.cfg.ClusterDomain
		searches = []string{pod.Namespace + ".svc." + d, "svc." + d, d}
		options = []string{"ndots:5"}
	case v1.DNSDefault:
		if b, err := os.ReadFile(r.cfg.HostResolvConf); err == nil && r.cfg.HostResolvConf != "" {
			return string(b)
		}
	case v1.DNSNone:
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		servers = append(servers, dc.Nameservers...)
		searches = append(searches, dc.Searches...)
		for _, o := range dc.Options {
			if o.Value != nil {
				options = append(options, o.Name+":"+*o.Value)
			} else {
				options = append(options, o.Name)
			}
		}
	}
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(searches, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.String()
}

func hostsFile(pod *v1.Pod, ips []netip.Addr, domain string) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file (podnet).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	host := pod.Name
	if pod.Spec.Hostname != "" {
		host = pod.Spec.Hostname
	}
	names := host
	if pod.Spec.Subdomain != "" {
		names = fmt.Sprintf("%s.%s.%s.svc.%s\t%s", host, pod.Spec.Subdomain, pod.Namespace, domain, host)
	}
	if !pod.Spec.HostNetwork {
		for _, ip := range ips {
			fmt.Fprintf(&b, "%s\t%s\n", ip, names)
		}
	}
	for _, ha := range pod.Spec.HostAliases {
		fmt.Fprintf(&b, "%s\t%s\n", ha.IP, strings.Join(ha.Hostnames, "\t"))
	}
	return b.String()
}
