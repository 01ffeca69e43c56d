package kubeletapi_test

// The path users take: kubectl → kube-apiserver → this server. A real
// etcd and kube-apiserver from tools/bin run on loopback with the flags the
// local cluster must give kube-apiserver; a Node advertises the server
// (InternalIP 127.0.0.1, daemonEndpoints port) and pod default/web is bound
// to it; the fake runtime answers. Clients go through the API server the way
// kubectl 1.37 does: WebSocket v5 for exec (the API server translates it to
// SPDY for the kubelet), SPDY tunnelled over WebSocket for port-forward,
// plain GET for logs.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/podnet/podnet/internal/kubeletapi/kubeletapitest"
)

func TestThroughARealAPIServer(t *testing.T) {
	rt := newFake(t)
	env := kubeletapitest.Start(t, rt)
	api := kubeletapitest.StartAPIServer(t, env)
	api.CreatePod(t, "default", "web", "app")
	admin, cs := api.Admin, api.Client

	execURL := func(cmd ...string) *url.URL {
		return cs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("web").SubResource("exec").
			VersionedParams(&v1.PodExecOptions{Container: "app", Command: cmd, Stdin: true, Stdout: true, Stderr: true},
				scheme.ParameterCodec).URL()
	}
	t.Run("exec as kubectl does it: WebSocket v5 to the API server", func(t *testing.T) {
		ex, err := remotecommand.NewWebSocketExecutor(admin, "GET", execURL("echo-line").String())
		if err != nil {
			t.Fatal(err)
		}
		var out, errs bytes.Buffer
		err = ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{
			Stdin: strings.NewReader("through\n"), Stdout: &out, Stderr: &errs})
		if err != nil || out.String() != "got through\n" || errs.String() != "err" {
			t.Errorf("err %v, stdout %q, stderr %q", err, out.String(), errs.String())
		}
	})
	t.Run("an exit code passes through the API server", func(t *testing.T) {
		// kubectl's way (WebSocket v5). Over SPDY through the API server the
		// status on the error stream can be lost when the backend closes right
		// after writing it (an upstream race, kubernetes/kubernetes#137404);
		// the direct SPDY path is tested in server_test.go.
		ex, err := remotecommand.NewWebSocketExecutor(admin, "GET", execURL("exit", "3").String())
		if err != nil {
			t.Fatal(err)
		}
		err = ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard})
		var code utilexec.CodeExitError
		if !errors.As(err, &code) || code.Code != 3 {
			t.Errorf("err %v, want exit code 3", err)
		}
	})
	t.Run("logs follow through the API server", func(t *testing.T) {
		if _, err := rt.log.Stdout().WriteString("via apiserver\n"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		body, err := cs.CoreV1().Pods("default").GetLogs("web", &v1.PodLogOptions{Container: "app", Follow: true}).Stream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		if line, err := bufio.NewReader(body).ReadString('\n'); line != "via apiserver\n" {
			t.Errorf("first line %q, %v", line, err)
		}
	})
	t.Run("port-forward as kubectl does it: SPDY tunnelled over WebSocket", func(t *testing.T) {
		u := cs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("web").SubResource("portforward").URL()
		dialer, err := portforward.NewSPDYOverWebsocketDialer(u, admin)
		if err != nil {
			t.Fatal(err)
		}
		stop, ready := make(chan struct{}), make(chan struct{})
		defer close(stop)
		fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:5000"}, stop, ready, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		failed := make(chan error, 1)
		go func() { failed <- fw.ForwardPorts() }()
		select {
		case <-ready:
		case err := <-failed:
			t.Fatalf("port-forward: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("port-forward never ready")
		}
		ports, err := fw.GetPorts()
		if err != nil {
			t.Fatal(err)
		}
		kubeletapitest.EchoThrough(t, ports[0].Local, 1<<20)
	})
}
