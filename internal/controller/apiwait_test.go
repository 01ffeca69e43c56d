package controller

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
)

// A read sent while the API server refuses connections waits and is
// answered once it accepts them again; a write fails at once, as without
// the gate; a waiting read ends with its context. Everything on loopback:
// a port that was just closed refuses, then a server opens on it.
func TestInformerReadsWaitForTheAPIServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // now it refuses
	rc := InformerConfig(&rest.Config{Host: "http://" + addr}, quiet)
	rt, err := rest.TransportFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: rt}

	type result struct {
		body string
		err  error
		at   time.Time
	}
	read := make(chan result, 1)
	go func() {
		resp, err := hc.Get("http://" + addr + "/api/v1/services?watch=true")
		r := result{err: err, at: time.Now()}
		if err == nil {
			b := make([]byte, 64)
			n, _ := resp.Body.Read(b)
			r.body = string(b[:n])
			resp.Body.Close()
		}
		read <- r
	}()

	// A write is not held: it fails with the refusal.
	resp, err := hc.Post("http://"+addr+"/api/v1/namespaces/default/events", "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("a POST to a closed port succeeded")
	}
	if !utilnet.IsConnectionRefused(err) {
		t.Errorf("a POST to a closed port: %v, want the refusal", err)
	}
	// A read with a deadline ends with it.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/nodes", nil)
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		t.Error("a read with a deadline was answered while nothing listens")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a read with a deadline: %v, want its deadline", err)
	}

	select {
	case r := <-read:
		t.Fatalf("the read returned while nothing listens: %+v", r)
	case <-time.After(1500 * time.Millisecond):
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s again (taken by another process meanwhile?): %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("back")) }))
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	opened := time.Now()
	select {
	case r := <-read:
		if r.err != nil || r.body != "back" {
			t.Fatalf("the waiting read: %q %v, want the answer of the server that came back", r.body, r.err)
		}
		if d := r.at.Sub(opened); d > 3*apiProbeInterval {
			t.Errorf("the waiting read was answered %s after the server came back, want within %s", d, 3*apiProbeInterval)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting read was not answered 10 s after the server came back")
	}
	// The gate is open again: a read goes straight through.
	resp, err = hc.Get("http://" + addr + "/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestAPIAddress(t *testing.T) {
	for host, want := range map[string]string{
		"https://10.0.0.1:6443": "10.0.0.1:6443",
		"https://[fd00::1]:443": "[fd00::1]:443",
		"https://api.example":   "api.example:443",
		"http://127.0.0.1":      "127.0.0.1:80",
		"10.0.0.1:6443":         "10.0.0.1:6443",
	} {
		if got := apiAddress(host); got != want {
			t.Errorf("apiAddress(%q) = %q, want %q", host, got, want)
		}
	}
}
