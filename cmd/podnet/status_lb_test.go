package main

import (
	"bytes"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/lb/announce"
)

func TestStatusLoadBalancersTable(t *testing.T) {
	lb := func(name string, ips ...string) v1.Service {
		s := v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer}}
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
		}
		return s
	}
	cluster := lb("cluster-ip")
	cluster.Spec.Type = v1.ServiceTypeClusterIP
	svcs := []v1.Service{lb("web-lb", "172.30.0.201"), lb("dark", "172.30.0.202"), lb("pending"), cluster, lb("split", "172.30.0.200")}
	at := func(ip string) announce.Announcement { return announce.Announcement{VIP: netip.MustParseAddr(ip)} }
	views := []announce.NodeView{
		{Node: "node-2", Announced: []announce.Announcement{at("172.30.0.201"), at("172.30.0.200")}},
		{Node: "node-1", Announced: []announce.Announcement{at("172.30.0.200")}},
	}
	var out bytes.Buffer
	if err := printLBRows(&out, lbRows(svcs, views), []string{"node-3: connection refused"}); err != nil {
		t.Fatal(err)
	}
	want := `VIP           SERVICE         ANNOUNCED BY
172.30.0.200  default/split   node-1,node-2 (SPLIT BRAIN)
172.30.0.201  default/web-lb  node-2
172.30.0.202  default/dark    NONE
no view from node node-3: connection refused
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
