package controller

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTransformDropsManagedFields(t *testing.T) {
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{"keep": "me"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	out, err := Transform(svc)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*v1.Service)
	if len(got.ManagedFields) != 0 || got.Annotations["keep"] != "me" || got.Name != "web" {
		t.Errorf("after the transform: %+v", got.ObjectMeta)
	}
}
