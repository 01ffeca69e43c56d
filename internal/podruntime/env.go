package podruntime

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// serviceEnv returns the docker-link style variables of the Services the pod
// sees: every Service of its namespace and, when enableServiceLinks is off,
// only the kubernetes Service of the default namespace (as the kubelet does).
func serviceEnv(pod *v1.Pod, lister corelisters.ServiceLister) map[string]string {
	out := map[string]string{}
	if lister == nil {
		return out
	}
	var svcs []*v1.Service
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		svcs, _ = lister.Services(pod.Namespace).List(labels.Everything())
	}
	if k, err := lister.Services(v1.NamespaceDefault).Get("kubernetes"); err == nil && pod.Namespace != v1.NamespaceDefault {
		svcs = append(svcs, k)
	}
	for _, s := range svcs {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == v1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		name := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		ip := s.Spec.ClusterIP
		host := ip
		if a, err := netip.ParseAddr(ip); err == nil && a.Is6() {
			host = "[" + ip + "]"
		}
		out[name+"_SERVICE_HOST"] = ip
		out[name+"_SERVICE_PORT"] = fmt.Sprint(s.Spec.Ports[0].Port)
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				out[name+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))] = fmt.Sprint(p.Port)
			}
		}
		first := s.Spec.Ports[0]
		out[name+"_PORT"] = fmt.Sprintf("%s://%s:%d", strings.ToLower(string(first.Protocol)), host, first.Port)
		for _, p := range s.Spec.Ports {
			proto := strings.ToLower(string(p.Protocol))
			prefix := fmt.Sprintf("%s_PORT_%d_%s", name, p.Port, strings.ToUpper(proto))
			out[prefix] = fmt.Sprintf("%s://%s:%d", proto, host, p.Port)
			out[prefix+"_PROTO"] = proto
			out[prefix+"_PORT"] = fmt.Sprint(p.Port)
			out[prefix+"_ADDR"] = ip
		}
	}
	return out
}

// containerEnv builds the environment of a container: a minimal base, the
// service variables, then the container's own env (which may refer to
// earlier variables as $(NAME)).
func containerEnv(pod *v1.Pod, c *v1.Container, podIPs []netip.Addr, hostIP netip.Addr, lister corelisters.ServiceLister) []string {
	env := map[string]string{
		"PATH":     os.Getenv("PATH"),
		"HOSTNAME": pod.Name,
		"HOME":     "/root",
	}
	if env["PATH"] == "" {
		env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	for k, v := range serviceEnv(pod, lister) {
		env[k] = v
	}
	for _, e := range c.Env {
		v := expand(e.Value, env)
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			v = fieldRef(pod, e.ValueFrom.FieldRef.FieldPath, podIPs, hostIP)
		}
		env[e.Name] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

func fieldRef(pod *v1.Pod, path string, podIPs []netip.Addr, hostIP netip.Addr) string {
	switch path {
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	case "metadata.uid":
		return string(pod.UID)
	case "spec.nodeName":
		return pod.Spec.NodeName
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName
	case "status.podIP":
		if len(podIPs) > 0 {
			return podIPs[0].String()
		}
	case "status.podIPs":
		var s []string
		for _, ip := range podIPs {
			s = append(s, ip.String())
		}
		return strings.Join(s, ",")
	case "status.hostIP", "status.hostIPs":
		return hostIP.String()
	}
	if k, ok := strings.CutPrefix(path, "metadata.labels['"); ok {
		return pod.Labels[strings.TrimSuffix(k, "']")]
	}
	if k, ok := strings.CutPrefix(path, "metadata.annotations['"); ok {
		return pod.Annotations[strings.TrimSuffix(k, "']")]
	}
	return ""
}

// expand replaces $(NAME) with env[NAME]; $$(NAME) stays literal $(NAME);
// unknown names stay as written (the kubelet's rules).
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) {
			if s[i+1] == '$' {
				b.WriteByte('$')
				i++
				continue
			}
			if s[i+1] == '(' {
				if end := strings.IndexByte(s[i+2:], ')'); end >= 0 {
					name := s[i+2 : i+2+end]
					if v, ok := env[name]; ok {
						b.WriteString(v)
					} else {
						b.WriteString(s[i : i+3+end])
					}
					i += 2 + end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
