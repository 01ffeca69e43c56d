package podruntime

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

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
	list, err := libcni.ConfListFromFile(files[0])
	if err != nil {
		return nil, fmt.Errorf("CNI configuration %s: %w", files[0], err)
	}
	return list, nil
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

// resolvConf renders /etc/resolv.conf for the pod's dnsPolicy, as the
// kubelet does (pkg/kubelet/network/dns):
//
//   - ClusterFirst (the default): the cluster DNS servers, the search path
//     <ns>.svc.<domain> svc.<domain> <domain> followed by the node's search
//     domains, and options ndots:5. A host-network pod with ClusterFirst gets
//     Default instead; ClusterFirstWithHostNet keeps the cluster resolver for
//     it. Without a cluster DNS server ClusterFirst falls back to Default.
//   - Default: the node's resolver (HostResolvConf: nameservers, search
//     domains and options). In the local cluster that file names the outside
//     world's DNS server, never this machine's resolver.
//   - None: nothing but dnsConfig.
//
// dnsConfig is merged into all of them: nameservers and searches are
// appended without duplicates, options are merged by name (the pod's value
// wins). Then the kubelet's limits apply: at most 3 nameservers, 32 search
// domains and 2048 characters of search path.
func (r *Runtime) resolvConf(pod *v1.Pod) string {
	return renderResolvConf(podDNSConfig(pod, r.cfg.ClusterDNS, r.cfg.ClusterDomain, readHostDNS(r.cfg.HostResolvConf)))
}

// dnsConfig is the content of a resolv.conf.
type dnsConfig struct {
	servers, searches, options []string
}

// Limits of a pod's resolv.conf (the kubelet's, from glibc's).
const (
	maxDNSNameservers   = 3
	maxDNSSearches      = 32
	maxDNSSearchListLen = 2048
)

// readHostDNS parses the node's resolv.conf; a missing file (or none
// configured) is an empty configuration, as with the kubelet's
// --resolv-conf="".
func readHostDNS(path string) dnsConfig {
	if path == "" {
		return dnsConfig{}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return dnsConfig{}
	}
	return parseResolvConf(string(b))
}

// parseResolvConf reads nameserver, search (or domain: the last of them
// wins, as in glibc) and options lines.
func parseResolvConf(s string) dnsConfig {
	var c dnsConfig
	for _, line := range strings.Split(s, "\n") {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				c.servers = append(c.servers, f[1])
			}
		case "search", "domain":
			c.searches = nil
			for _, d := range f[1:] {
				if d = strings.TrimSuffix(d, "."); d != "" {
					c.searches = append(c.searches, d)
				}
			}
		case "options":
			c.options = append(c.options, f[1:]...)
		}
	}
	return c
}

// podDNSConfig computes the pod's resolver configuration from its
// dnsPolicy and dnsConfig, the cluster DNS servers and domain, and the
// node's own resolver configuration.
func podDNSConfig(pod *v1.Pod, clusterDNS []netip.Addr, domain string, host dnsConfig) dnsConfig {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = v1.DNSClusterFirst
	}
	if pod.Spec.HostNetwork && policy == v1.DNSClusterFirst {
		policy = v1.DNSDefault // as the kubelet does
	}
	if (policy == v1.DNSClusterFirst || policy == v1.DNSClusterFirstWithHostNet) && len(clusterDNS) == 0 {
		policy = v1.DNSDefault // no cluster DNS known: the kubelet falls back too
	}
	var c dnsConfig
	switch policy {
	case v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet:
		for _, s := range clusterDNS {
			c.servers = append(c.servers, s.String())
		}
		c.searches = []string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}
		c.searches = append(c.searches, host.searches...)
		c.options = []string{"ndots:5"}
	case v1.DNSNone:
	default: // Default, and anything the API server would have refused
		c = dnsConfig{servers: slices.Clone(host.servers), searches: slices.Clone(host.searches), options: slices.Clone(host.options)}
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		c.servers = omitDuplicates(append(c.servers, dc.Nameservers...))
		c.searches = omitDuplicates(append(c.searches, dc.Searches...))
		c.options = mergeDNSOptions(c.options, dc.Options)
	}
	c.searches = omitDuplicates(c.searches)
	if len(c.servers) > maxDNSNameservers {
		c.servers = c.servers[:maxDNSNameservers]
	}
	c.searches = fitSearches(c.searches)
	return c
}

// omitDuplicates keeps the first of equal strings.
func omitDuplicates(in []string) []string {
	seen := map[string]bool{}
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// mergeDNSOptions merges the pod's options into the existing ones by name:
// a pod's option replaces the same-named one in place, new ones follow in
// order.
func mergeDNSOptions(existing []string, pod []v1.PodDNSConfigOption) []string {
	var names []string
	values := map[string]string{}
	set := func(name, value string) {
		if _, ok := values[name]; !ok {
			names = append(names, name)
		}
		values[name] = value
	}
	for _, o := range existing {
		name, value, _ := strings.Cut(o, ":")
		set(name, value)
	}
	for _, o := range pod {
		set(o.Name, ptr.Deref(o.Value, ""))
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if v := values[n]; v != "" {
			out = append(out, n+":"+v)
		} else {
			out = append(out, n)
		}
	}
	return out
}

// fitSearches applies the search path limits, dropping domains from the end.
func fitSearches(s []string) []string {
	if len(s) > maxDNSSearches {
		s = s[:maxDNSSearches]
	}
	for len(s) > 0 && len(strings.Join(s, " ")) > maxDNSSearchListLen {
		s = s[:len(s)-1]
	}
	return s
}

func renderResolvConf(c dnsConfig) string {
	var b strings.Builder
	for _, s := range c.servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(c.searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(c.searches, " "))
	}
	if len(c.options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(c.options, " "))
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
