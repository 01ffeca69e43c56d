package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

// traceObjects: client and web-1 in default; a policy isolates web-1 for
// ingress and allows nothing. (What trace concludes is tested in
// internal/trace; here only the command: arguments, output, exit status.)
func traceObjects() []runtime.Object {
	mkPod := func(name, node, ip, app string) *v1.Pod {
		return &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": app}},
			Spec:       v1.PodSpec{NodeName: node},
			Status:     v1.PodStatus{Phase: v1.PodRunning, PodIP: ip, PodIPs: []v1.PodIP{{IP: ip}}},
		}
	}
	return []runtime.Object{
		&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		mkPod("client", "node-1", "10.244.1.5", "client"),
		mkPod("web-1", "node-2", "10.244.2.7", "web"),
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-deny"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			}},
	}
}

// runTraceCommand runs `podnet trace ARGS` against a fake API server and
// returns stdout, the exit status main would use and the error.
func runTraceCommand(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	cmd := newTraceCommandWith(func() string { return "" }, func(string) (kubernetes.Interface, error) {
		return fake.NewClientset(traceObjects()...), nil
	})
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	if err == nil {
		return out.String(), 0, nil
	}
	var ee exitError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v is no exitError (main would exit 1)", err)
	}
	return out.String(), ee.code, err
}

// The whole command against a fake API server: output and exit status.
func TestTraceCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int    // 0 allowed, 1 denied, 2 error
		out  string // a part of stdout, or of the error for code 2
	}{
		{name: "an allowed connection exits 0", args: []string{"web-1", "client"}, code: 0, out: `default/web-1 (10.244.2.7, node-2) -> default/client tcp/80: ALLOWED
to 10.244.1.5:80 (default/client): ALLOWED
  route: node-2 -> node-1: none: node-2 has no route to node-1's pod CIDR
  egress  at default/web-1: no policy selects this pod for egress -> allowed
  ingress at default/client: no policy selects this pod for ingress -> allowed
`},
		{name: "-o json prints the explanation as data", args: []string{"web-1", "client", "-o", "json"}, code: 0,
			out: `"verdict": "allowed"`},
		{name: "a bad -o exits 2", args: []string{"web-1", "client", "-o", "yaml"}, code: 2, out: "want text or json"},
		{name: "--probe needs a local cluster", args: []string{"web-1", "client", "--probe"}, code: 2, out: "--probe needs the pod on a local cluster"},
		{name: "a denied connection exits 1", args: []string{"-n", "default", "client", "10.244.2.7:8080"}, code: 1,
			out: "isolated by default/web-deny; no rule allows tcp/8080 from 10.244.1.5 -> DENIED"},
		{name: "an unknown pod exits 2", args: []string{"nobody", "web-1"}, code: 2, out: "pod default/nobody not found"},
		{name: "a bad target exits 2", args: []string{"client", "web-1:http"}, code: 2, out: "bad port"},
		{name: "a bad source exits 2", args: []string{"Client", "web-1"}, code: 2, out: "bad pod name"},
		{name: "a missing argument exits 2", args: []string{"client"}, code: 2, out: "POD and TARGET"},
		{name: "an unknown flag exits 2", args: []string{"--bogus", "client", "web-1"}, code: 2, out: "unknown flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code, err := runTraceCommand(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit status %d, want %d (err %v, stdout:\n%s)", code, tc.code, err, out)
			}
			if tc.code == 2 {
				out = err.Error()
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("output:\n%s\nwant it to contain:\n%s", out, tc.out)
			}
		})
	}
}

// A client that cannot be made is an error (exit 2), not a denial.
func TestTraceCommandClientError(t *testing.T) {
	cmd := newTraceCommandWith(func() string { return "" }, func(string) (kubernetes.Interface, error) { return nil, errors.New("no local cluster") })
	cmd.SetArgs([]string{"client", "web-1"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	var ee exitError
	if err := cmd.Execute(); !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, "no local cluster") {
		t.Fatalf("err %v, want exit 2 with the client's error", err)
	}
}
