package controller

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestTransformDropsManagedFields(t *testing.T) {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Annotations: map[string]string{"keep": "me"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
		Status: v1.NodeStatus{Images: []v1.ContainerImage{{Names: []string{"pause"}}},
			Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "172.30.0.11"}}}}
	out, err := Transform(n)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*v1.Node)
	if len(got.ManagedFields) != 0 || got.Status.Images != nil {
		t.Errorf("after the transform: managedFields %v, images %v", got.ManagedFields, got.Status.Images)
	}
	if got.Annotations["keep"] != "me" || got.Name != "node-1" || len(got.Status.Addresses) != 1 {
		t.Errorf("the transform dropped what the agent reads: %+v", got)
	}
}

// TestTransform lists what the transform keeps of Services and
// EndpointSlices: exactly what the agent reads (see Transform).
func TestTransform(t *testing.T) {
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "default", Name: name, UID: "u-1", ResourceVersion: "42", GenerateName: "web-",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io", "app": "web"},
			Annotations: map[string]string{TriggerTimeAnnotation: "2026-12-07T15:00:00Z",
				"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "Service", Name: "web"}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}}}
	}
	sl := &discoveryv1.EndpointSlice{ObjectMeta: meta("web-abcde"), AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](8080)}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"10.244.1.2"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			Hostname:   ptr.To("web-0"), NodeName: ptr.To("node-1"), Zone: ptr.To("a"),
			TargetRef: &v1.ObjectReference{Kind: "Pod", Name: "web-0"},
			Hints:     &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "a"}}, ForNodes: []discoveryv1.ForNode{{Name: "node-1"}}},
		}}}
	out, err := Transform(sl)
	if err != nil {
		t.Fatal(err)
	}
	want := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-abcde", UID: "u-1", ResourceVersion: "42",
			Labels:      map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
			Annotations: map[string]string{TriggerTimeAnnotation: "2026-12-07T15:00:00Z"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](8080)}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"10.244.1.2"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To("node-1"),
			Hints:      &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "a"}}, ForNodes: []discoveryv1.ForNode{{Name: "node-1"}}},
		}}}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("slice after the transform:\n%+v\nwant\n%+v", out, want)
	}
	got := out.(*discoveryv1.EndpointSlice).Endpoints[0].Conditions
	if *got.Ready != true || *got.Terminating != false || got.Ready != got.Serving {
		t.Errorf("conditions %v %v %v: want true, true, false, the two trues one shared value", *got.Ready, *got.Serving, *got.Terminating)
	}

	svc := &v1.Service{ObjectMeta: meta("web"), Spec: v1.ServiceSpec{ClusterIP: "10.96.0.5", Selector: map[string]string{"app": "web"},
		Ports: []v1.ServicePort{{Port: 80}}}, Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "172.30.0.200"}}}}}
	wantSvc := svc.DeepCopy()
	wantSvc.Annotations, wantSvc.OwnerReferences, wantSvc.ManagedFields, wantSvc.Labels, wantSvc.Spec.Selector = nil, nil, nil, nil, nil
	if out, err = Transform(svc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, wantSvc) {
		t.Errorf("Service after the transform:\n%+v\nwant\n%+v", out, wantSvc)
	}
	// A Service of another proxy keeps the label that says so.
	other := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{ServiceProxyNameLabel: "other", "app": "x"}}}
	if out, _ = Transform(other); !reflect.DeepEqual(out.(*v1.Service).Labels, map[string]string{ServiceProxyNameLabel: "other"}) {
		t.Errorf("labels after the transform: %v, want only %s", out.(*v1.Service).Labels, ServiceProxyNameLabel)
	}
}
