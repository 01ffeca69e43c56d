package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// zonesPlan is the address plan of the zoned cluster, used by no other
// test: nodes 172.28.93.0/24, pods 10.194.0.0/16, services 10.195.0.0/16,
// world 198.18.93.0/24.
var zonesPlan = []string{"--node-network", "172.28.93.0/24", "--pod-cidr", "10.194.0.0/16",
	"--service-cidr", "10.195.0.0/16", "--world-network", "198.18.93.0/24"}

// zonesManifest: a Deployment spread over the zones by a topology spread
// constraint (one replica per zone), two Services in front of it with
// trafficDistribution PreferClose and PreferSameZone, and a client pinned
// to zone a.
const zonesManifest = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: zonal}
spec:
  replicas: 2
  selector: {matchLabels: {app: zonal}}
  template:
    metadata: {labels: {app: zonal}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: zonal}}}
      containers: [{name: srv, image: podnet/test, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: zonal-close}
spec:
  selector: {app: zonal}
  trafficDistribution: PreferClose
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: zonal-same}
spec:
  selector: {app: zonal}
  trafficDistribution: PreferSameZone
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: zone-client, labels: {app: zone-client}}
spec:
  nodeSelector: {topology.kubernetes.io/zone: a}
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
`

// TestZones starts `podnet up --nodes 4 --zones a,b` and checks that the
// nodes are dealt to the zones with their labels and names, that a
// topology spread constraint puts one replica in each zone, that a client
// in zone a reaches only zone a's endpoint through PreferClose and
// PreferSameZone Services while it exists, that it falls back to zone b
// when zone a has none, and comes back when zone a has one again.
func TestZones(t *testing.T) {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	c, err := up("e2e-zones-"+randHex(2), append([]string{"--nodes", "4", "--zones", "a,b"}, zonesPlan...)...)
	if err != nil {
		t.Fatalf("podnet up: %v", err)
	}
	t.Cleanup(c.down)
	cs := c.client(t)
	checkZonedNodes(t, c, cs)

	c.apply(t, zonesManifest)
	servers := c.runningPods(t, "default", "app=zonal", 2, true)
	client := c.runningPods(t, "default", "app=zone-client", 1, false)[0]
	zoneOf := nodeZones(t, cs)
	if zoneOf[client.Spec.NodeName] != "a" {
		t.Fatalf("client on %s in zone %q, want zone a", client.Spec.NodeName, zoneOf[client.Spec.NodeName])
	}
	byZone := map[string]string{}
	for _, p := range servers {
		byZone[zoneOf[p.Spec.NodeName]] = p.Name
	}
	if byZone["a"] == "" || byZone["b"] == "" {
		t.Fatalf("the spread constraint put the replicas in zones %v, want one in a and one in b", byZone)
	}
	for _, svc := range []string{"zonal-close", "zonal-same"} {
		waitZoneHints(t, cs, svc, map[string]string{servers[0].Status.PodIP: zoneOf[servers[0].Spec.NodeName],
			servers[1].Status.PodIP: zoneOf[servers[1].Spec.NodeName]})
		c.checkAllAnsweredBy(t, client.Name, "svc/"+svc+":80", byZone["a"])
	}

	// Zone a loses its endpoint: its nodes are cordoned and its replica
	// deleted; the spread constraint keeps the replacement Pending (zone
	// a still counts), so zone b's replica is the only endpoint.
	for node, zone := range zoneOf {
		if zone == "a" {
			c.kubectl(t, "cordon", node)
		}
	}
	c.kubectl(t, "delete", "pod", byZone["a"], "--wait=true")
	for _, svc := range []string{"zonal-close", "zonal-same"} {
		c.checkAllAnsweredBy(t, client.Name, "svc/"+svc+":80", byZone["b"])
	}

	// Zone a has an endpoint again: requests go back to it.
	for node, zone := range zoneOf {
		if zone == "a" {
			c.kubectl(t, "uncordon", node)
		}
	}
	var back string
	eventually(t, 90*time.Second, "a replica in zone a again", func() error {
		for _, p := range c.runningPods(t, "default", "app=zonal", 2, true) {
			if zoneOf[p.Spec.NodeName] == "a" {
				back = p.Name
				return nil
			}
		}
		return fmt.Errorf("none in zone a")
	})
	for _, svc := range []string{"zonal-close", "zonal-same"} {
		c.checkAllAnsweredBy(t, client.Name, "svc/"+svc+":80", back)
	}
}

// checkZonedNodes: node i is <cluster>-node-<i>.<zone> with zones dealt in
// turn, labelled with its zone and region from registration, and podnet
// status shows each node's zone.
func checkZonedNodes(t *testing.T, c *cluster, cs kubernetes.Interface) {
	t.Helper()
	want := map[string]string{c.name + "-node-1.a": "a", c.name + "-node-2.b": "b", c.name + "-node-3.a": "a", c.name + "-node-4.b": "b"}
	nodes, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != len(want) {
		t.Fatalf("%d nodes, want %d", len(nodes.Items), len(want))
	}
	for _, n := range nodes.Items {
		if z, ok := want[n.Name]; !ok || n.Labels[v1.LabelTopologyZone] != z || n.Labels[v1.LabelTopologyRegion] != "local" {
			t.Errorf("node %s has zone %q and region %q; want one of %v with its zone and region local",
				n.Name, n.Labels[v1.LabelTopologyZone], n.Labels[v1.LabelTopologyRegion], want)
		}
	}
	st := c.status(t)
	if !slices.Equal(st.Zones, []string{"a", "b"}) {
		t.Errorf("podnet status zones %v, want [a b]", st.Zones)
	}
	for _, n := range st.Nodes {
		if n.Zone != want[n.Name] {
			t.Errorf("podnet status: node %s in zone %q, want %q", n.Name, n.Zone, want[n.Name])
		}
	}
}

// nodeZones maps each Node's name to its zone label.
func nodeZones(t *testing.T, cs kubernetes.Interface) map[string]string {
	t.Helper()
	nodes, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range nodes.Items {
		out[n.Name] = n.Labels[v1.LabelTopologyZone]
	}
	return out
}

// waitZoneHints waits until kube-controller-manager's EndpointSlice
// controller has given each endpoint of svc its zone (from its Node's
// label) and a hint for that zone: what trafficDistribution runs on.
func waitZoneHints(t *testing.T, cs kubernetes.Interface, svc string, zoneOfIP map[string]string) {
	t.Helper()
	eventually(t, 60*time.Second, "zone hints on the endpoints of "+svc, func() error {
		l, err := cs.DiscoveryV1().EndpointSlices("default").List(context.Background(),
			metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
		if err != nil {
			return err
		}
		seen := 0
		for _, s := range l.Items {
			for _, e := range s.Endpoints {
				z := zoneOfIP[e.Addresses[0]]
				if e.Zone == nil || *e.Zone != z || e.Hints == nil || len(e.Hints.ForZones) != 1 || e.Hints.ForZones[0].Name != z {
					return fmt.Errorf("endpoint %s: zone %v, hints %+v; want zone %q and a hint for it", e.Addresses[0], e.Zone, e.Hints, z)
				}
				seen++
			}
		}
		if seen != len(zoneOfIP) {
			return fmt.Errorf("%d endpoints, want %d", seen, len(zoneOfIP))
		}
		return nil
	})
}

// checkAllAnsweredBy waits until target, probed from pod from, answers
// from pod want, then probes it 20 times more: every answer must come
// from want (with two endpoints and no preference, 20 in a row from one
// happen once in a million).
func (c *cluster) checkAllAnsweredBy(t *testing.T, from, target, want string) {
	t.Helper()
	eventually(t, 30*time.Second, target+" answered by "+want, func() error {
		if got, _ := c.probeAnswer(from, target); got != want {
			return fmt.Errorf("answered by %q", got)
		}
		return nil
	})
	for i := range 20 {
		if got, _ := c.probeAnswer(from, target); got != want {
			t.Fatalf("%s from %s: answer %d came from %q, want every one from %s", target, from, i+1, got, want)
		}
	}
}
