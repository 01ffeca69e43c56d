package kubeletapi_test

// Fixture conventions: one node with pod default/web (UID web-uid) whose
// container "app" runs and "done" has exited; the fake runtime's commands
// are words (see fakeRuntime.Exec), not programs. The allowed client is
// kubeletapitest.APIServerUser in kubeletapitest.APIServerGroup.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/podnet/podnet/internal/crilog"
	"github.com/podnet/podnet/internal/kubeletapi"
	"github.com/podnet/podnet/internal/kubeletapi/kubeletapitest"
	"github.com/podnet/podnet/internal/pki"
)

var web = kubeletapi.Target{Namespace: "default", Pod: "web", Container: "app"}

// fakeRuntime is a node with one pod whose "commands" are built in.
type fakeRuntime struct {
	log *crilog.Capture // container app's log

	mu        sync.Mutex
	forwarded []int32 // ports asked for
}

var _ kubeletapi.Runtime = (*fakeRuntime)(nil)

func newFake(t *testing.T) *fakeRuntime {
	c, err := crilog.NewCapture(filepath.Join(t.TempDir(), "app.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Started)
	return &fakeRuntime{log: c}
}

func (f *fakeRuntime) Lookup(t kubeletapi.Target) error {
	if t.Namespace != "default" || t.Pod != "web" || (t.UID != "" && t.UID != "web-uid") {
		return kubeletapi.ErrPodNotFound
	}
	if t.Container != "" && t.Container != "app" {
		return fmt.Errorf("%w: %s is not running", kubeletapi.ErrContainerNotFound, t.Container)
	}
	return nil
}

// Exec knows: "echo-line" (reads a line, answers it on stdout, writes
// "err" on stderr), "exit N", "cat" (stdin to stdout until EOF) and "tty"
// (reports TTY and the first two terminal sizes).
func (f *fakeRuntime) Exec(_ context.Context, t kubeletapi.Target, cmd []string, s kubeletapi.Streams) error {
	switch cmd[0] {
	case "echo-line":
		line, err := bufio.NewReader(s.Stdin).ReadString('\n')
		if err != nil {
			return err
		}
		fmt.Fprintf(s.Stdout, "got %s", line)
		fmt.Fprint(s.Stderr, "err")
	case "exit":
		var code int
		fmt.Sscan(cmd[1], &code)
		return kubeletapi.ExitCode(code)
	case "cat":
		_, err := io.Copy(s.Stdout, s.Stdin)
		return err
	case "tty":
		for i := 0; i < 2; i++ {
			size := <-s.Resize
			fmt.Fprintf(s.Stdout, "tty=%v stderr=%v %dx%d\n", s.TTY, s.Stderr != nil, size.Width, size.Height)
		}
	}
	return nil
}

func (f *fakeRuntime) Attach(_ context.Context, _ kubeletapi.Target, s kubeletapi.Streams) error {
	_, err := fmt.Fprintln(s.Stdout, "attached")
	return err
}

// PortForward echoes the connection back.
func (f *fakeRuntime) PortForward(_ context.Context, _ kubeletapi.Target, port int32, stream io.ReadWriteCloser) error {
	f.mu.Lock()
	f.forwarded = append(f.forwarded, port)
	f.mu.Unlock()
	defer stream.Close()
	_, err := io.Copy(stream, stream)
	return err
}

func (f *fakeRuntime) Logs(t kubeletapi.Target, opts *v1.PodLogOptions) (kubeletapi.LogWriter, error) {
	if t.Container != "app" {
		return nil, kubeletapi.ErrContainerNotFound
	}
	if opts.Previous {
		return nil, fmt.Errorf("previous terminated container %q in pod %q not found", t.Container, t.Pod)
	}
	return func(ctx context.Context, stdout, stderr io.Writer) error {
		return crilog.Read(ctx, f.log.Path(), f.log.Done(), crilog.FromPodLogOptions(opts, time.Now()), stdout, stderr)
	}, nil
}

func (f *fakeRuntime) Pods() []*v1.Pod {
	return []*v1.Pod{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "web-uid"}}}
}

func TestExecCarriesStreamsAndExitCodesOverSPDYAndWebSocket(t *testing.T) {
	env := kubeletapitest.Start(t, newFake(t))
	for _, p := range []kubeletapitest.Protocol{kubeletapitest.SPDY, kubeletapitest.WebSocket} {
		t.Run(string(p)+" carries stdin, stdout and stderr apart", func(t *testing.T) {
			var out, errs bytes.Buffer
			err := env.Exec(context.Background(), env.Config, p, web, []string{"echo-line"},
				remotecommand.StreamOptions{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: &errs})
			if err != nil || out.String() != "got hello\n" || errs.String() != "err" {
				t.Errorf("err %v, stdout %q, stderr %q", err, out.String(), errs.String())
			}
		})
		t.Run(string(p)+" passes a non-zero exit code through", func(t *testing.T) {
			err := env.Exec(context.Background(), env.Config, p, web, []string{"exit", "3"},
				remotecommand.StreamOptions{Stdout: io.Discard})
			var code utilexec.CodeExitError
			if !errors.As(err, &code) || code.Code != 3 {
				t.Errorf("err %v (%T), want exit code 3", err, err)
			}
		})
		t.Run(string(p)+" gives a TTY session its terminal sizes", func(t *testing.T) {
			var out bytes.Buffer
			sizes := &sizeQueue{sizes: []remotecommand.TerminalSize{{Width: 80, Height: 24}, {Width: 120, Height: 40}}}
			err := env.Exec(context.Background(), env.Config, p, web, []string{"tty"},
				remotecommand.StreamOptions{Stdin: strings.NewReader(""), Stdout: &out, Tty: true, TerminalSizeQueue: sizes})
			if err != nil || out.String() != "tty=true stderr=false 80x24\ntty=true stderr=false 120x40\n" {
				t.Errorf("err %v, stdout %q", err, out.String())
			}
		})
	}
	t.Run("SPDY closes stdin when the client's input ends", func(t *testing.T) {
		var out bytes.Buffer
		err := env.Exec(context.Background(), env.Config, kubeletapitest.SPDY, web, []string{"cat"},
			remotecommand.StreamOptions{Stdin: strings.NewReader("a\nb\n"), Stdout: &out})
		if err != nil || out.String() != "a\nb\n" {
			t.Errorf("err %v, stdout %q", err, out.String())
		}
	})
}

// sizeQueue hands out its sizes, then blocks (nil would end resizing).
type sizeQueue struct {
	mu    sync.Mutex
	sizes []remotecommand.TerminalSize
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sizes) == 0 {
		return nil
	}
	s := q.sizes[0]
	q.sizes = q.sizes[1:]
	return &s
}

func TestMissingPodsAndContainersAreAnsweredInTheKubeletsWords(t *testing.T) {
	env := kubeletapitest.Start(t, newFake(t))
	for _, tc := range []struct {
		name   string
		target kubeletapi.Target
		want   string
	}{
		{"a pod not on this node", kubeletapi.Target{Namespace: "default", Pod: "elsewhere", Container: "app"}, "pod does not exist"},
		{"a container the pod does not run", kubeletapi.Target{Namespace: "default", Pod: "web", Container: "nope"}, `container not found ("nope")`},
	} {
		t.Run("exec into "+tc.name, func(t *testing.T) {
			err := env.Exec(context.Background(), env.Config, kubeletapitest.SPDY, tc.target, []string{"true"},
				remotecommand.StreamOptions{Stdout: io.Discard})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, path, want string }{
		{"logs of a pod not on this node", "/containerLogs/default/elsewhere/app", `pod "elsewhere" does not exist`},
		{"logs of a missing container", "/containerLogs/default/web/nope", `container "nope" not found in pod "web"`},
		{"previous logs that do not exist", "/containerLogs/default/web/app?previous=true", `previous terminated container "app" in pod "web" not found`},
		{"logs with an invalid option", "/containerLogs/default/web/app?tailLines=-1", "tailLines: must be greater than or equal to 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, env, env.Config, tc.path)
			if code < 400 || !strings.Contains(body, tc.want) {
				t.Errorf("%d %q, want an error saying %q", code, body, tc.want)
			}
		})
	}
}

func get(t *testing.T, env *kubeletapitest.Env, cfg *rest.Config, path string) (int, string) {
	t.Helper()
	resp, err := env.Get(context.Background(), cfg, path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOnlyTheAPIServersIdentityIsServed(t *testing.T) {
	env := kubeletapitest.Start(t, newFake(t))
	other, err := pki.EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.IssueClient("forged", kubeletapitest.APIServerUser, []string{kubeletapitest.APIServerGroup})
	if err != nil {
		t.Fatal(err)
	}
	noCert := &rest.Config{Host: env.URL, TLSClientConfig: rest.TLSClientConfig{CAData: env.CA.CertPEM}}
	forgedCfg := &rest.Config{Host: env.URL, TLSClientConfig: rest.TLSClientConfig{CAData: env.CA.CertPEM,
		CertData: forged.CertPEM, KeyData: forged.KeyPEM}}
	node := env.ClientConfig(t, "node", "system:node:test-node", []string{"system:nodes"})
	for _, tc := range []struct {
		name string
		cfg  *rest.Config
		code int
		body string
	}{
		{"no client certificate is unauthorized", noCert, http.StatusUnauthorized, "Unauthorized"},
		{"a certificate from another CA is unauthorized", forgedCfg, http.StatusUnauthorized, "Unauthorized"},
		{"a verified client that is not the API server is forbidden", node, http.StatusForbidden,
			"Forbidden (user=system:node:test-node, verb=get, resource=nodes, subresource(s)=[healthz proxy])"},
		{"the API server's kubelet client is served", env.Config, http.StatusOK, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, env, tc.cfg, "/healthz")
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("%d %q, want %d %q", code, body, tc.code, tc.body)
			}
		})
	}
	t.Run("a forbidden client cannot exec", func(t *testing.T) {
		err := env.Exec(context.Background(), node, kubeletapitest.SPDY, web, []string{"exit", "0"},
			remotecommand.StreamOptions{Stdout: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "Forbidden (user=system:node:test-node, verb=create") {
			t.Errorf("err %v, want forbidden", err)
		}
	})
}

func TestAUserNameAloneCanBeAllowed(t *testing.T) {
	cfg := kubeletapi.Config{Addr: "127.0.0.1:0", CertFile: "c", KeyFile: "k", ClientCAFile: "ca", AllowedUsers: []string{"u"}}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
	err := (&kubeletapi.Config{}).Validate()
	for _, want := range []string{"listen address", "serving certificate", "serving key", "client CA", "no allowed user or group"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("empty config: %v, want it to name %q", err, want)
		}
	}
}

func TestPortForwardCarriesDataIntactAndNamesThePort(t *testing.T) {
	rt := newFake(t)
	env := kubeletapitest.Start(t, rt)
	local := env.PortForward(t, kubeletapi.Target{Namespace: "default", Pod: "web"}, 8080)
	kubeletapitest.EchoThrough(t, local, 1<<20)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.forwarded) != 1 || rt.forwarded[0] != 8080 {
		t.Errorf("runtime asked for ports %v, want [8080]", rt.forwarded)
	}
}

func TestLogsFollowShowsOutputWrittenAfterTheRequestAndEndsWithTheContainer(t *testing.T) {
	rt := newFake(t)
	env := kubeletapitest.Start(t, rt)
	if _, err := rt.log.Stdout().WriteString("early\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := env.Get(context.Background(), env.Config, "/containerLogs/default/web/app?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); err != nil || line != "early\n" {
		t.Fatalf("first line %q %v", line, err)
	}
	if _, err := rt.log.Stderr().WriteString("late\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "late\n" {
		t.Fatalf("followed line %q %v", line, err)
	}
	rt.log.Started() // the container's output ends
	rest, err := io.ReadAll(r)
	if err != nil || len(rest) != 0 {
		t.Errorf("after the end: %q %v", rest, err)
	}
	t.Run("options reach the reader", func(t *testing.T) {
		code, body := get(t, env, env.Config, "/containerLogs/default/web/app?tailLines=1&timestamps=true")
		if code != http.StatusOK || !strings.HasSuffix(body, "Z late\n") || strings.Contains(body, "early") {
			t.Errorf("%d %q, want only the last line with its time", code, body)
		}
		code, body = get(t, env, env.Config, "/containerLogs/default/web/app?stream=Stdout")
		if code != http.StatusOK || body != "early\n" {
			t.Errorf("stdout only: %d %q", code, body)
		}
	})
}

func TestPodsListsTheNodesPods(t *testing.T) {
	env := kubeletapitest.Start(t, newFake(t))
	code, body := get(t, env, env.Config, "/pods")
	if code != http.StatusOK || !strings.Contains(body, `"kind":"PodList"`) || !strings.Contains(body, `"uid":"web-uid"`) {
		t.Errorf("%d %s", code, body)
	}
}

func TestParseLogOptions(t *testing.T) {
	for _, tc := range []struct {
		query, want string // want: the error, or "" for none
	}{
		{"follow=true&previous=1&timestamps=false&tailLines=5&limitBytes=10&sinceSeconds=30", ""},
		{"sinceTime=2026-05-01T12:00:00Z", ""},
		{"tail=all", ""},
		{"tail=x", "query parameter tailLines"},
		{"follow=maybe", "query parameter follow"},
		{"sinceSeconds=1&sinceTime=2026-05-01T12:00:00Z", "at most one of sinceTime or sinceSeconds"},
		{"sinceSeconds=0", "sinceSeconds: must be greater than 0"},
		{"limitBytes=0", "limitBytes: must be greater than 0"},
		{"stream=Stdout&tailLines=1", "cannot be used with a stream other than All"},
		{"stream=Both", `unsupported value "Both"`},
		{"sinceTime=yesterday", "query parameter sinceTime"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, _ := urlQuery(tc.query)
			_, err := kubeletapi.ParseLogOptions(q)
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	q, _ := urlQuery("follow=true&tail=7&sinceSeconds=30")
	o, err := kubeletapi.ParseLogOptions(q)
	if err != nil || !o.Follow || o.TailLines == nil || *o.TailLines != 7 || *o.SinceSeconds != 30 {
		t.Errorf("parsed %+v, %v", o, err)
	}
}

func urlQuery(s string) (url.Values, error) { return url.ParseQuery(s) }
