package localbench

import (
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestServerPod is a pod of podnet's built-in test server, answering on
// port over TCP and UDP, bound to node, labelled app=app, Ready once the
// TCP port answers.
func TestServerPod(name, node, app string, port int32) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
		Spec: v1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []v1.Container{{
				Name: "srv", Image: "podnet/test",
				Ports: []v1.ContainerPort{
					{Name: "udp", ContainerPort: port, Protocol: v1.ProtocolUDP},
					{Name: "tcp", ContainerPort: port, Protocol: v1.ProtocolTCP},
				},
				ReadinessProbe: &v1.Probe{
					ProbeHandler:  v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(port)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
}
