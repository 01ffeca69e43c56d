package policy

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ipBlockPolicy(name, rv, cidr string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, ResourceVersion: rv},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: cidr}}}}}}}
}

func TestUsablePoliciesKeepTheLastGoodVersion(t *testing.T) {
	lastGood := map[string]*networkingv1.NetworkPolicy{}
	type report struct {
		name     string
		fallback bool
	}
	var reports []report
	rep := func(p *networkingv1.NetworkPolicy, _ error, fallback bool) {
		reports = append(reports, report{p.Name, fallback})
	}
	good := ipBlockPolicy("web", "1", "10.0.0.0/8")
	out, n := usablePolicies([]*networkingv1.NetworkPolicy{good}, lastGood, rep)
	if n != 0 || len(out) != 1 || out[0] != good || len(reports) != 0 {
		t.Fatalf("a good policy: %v %d %v", out, n, reports)
	}
	// An update the compiler cannot parse: the previous version stays.
	bad := ipBlockPolicy("web", "2", "10.0.0.0/33")
	out, n = usablePolicies([]*networkingv1.NetworkPolicy{bad}, lastGood, rep)
	if n != 1 || out[0] != good || len(reports) != 1 || !reports[0].fallback {
		t.Fatalf("a bad update: used %v, %d unusable, reports %v; want the good version and one fallback report", out[0].ResourceVersion, n, reports)
	}
	// A new bad policy has no last good version: used as written (its
	// bad parts match nothing).
	fresh := ipBlockPolicy("new", "3", "nonsense")
	out, _ = usablePolicies([]*networkingv1.NetworkPolicy{bad, fresh}, lastGood, rep)
	if out[1] != fresh || reports[len(reports)-1] != (report{"new", false}) {
		t.Errorf("a new bad policy: used %v, reports %v", out[1].ResourceVersion, reports)
	}
	// Deleted policies are forgotten.
	usablePolicies(nil, lastGood, rep)
	if len(lastGood) != 0 {
		t.Errorf("lastGood keeps %d deleted policies", len(lastGood))
	}
}
