package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// podnet ui prints where it serves, serves, and stops when interrupted
// (the flow streams would otherwise hold it open).
func TestUIServesUntilInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	cmd := &cobra.Command{}
	cmd.SetOut(pw)
	done := make(chan error, 1)
	go func() {
		done <- serveUI(ctx, cmd, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "page") }))
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	url := ""
	for _, f := range strings.Fields(line) {
		if strings.HasPrefix(f, "http://127.0.0.1:") {
			url = f
		}
	}
	if url == "" {
		t.Fatalf("printed %q, want the URL", line)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "page" {
		t.Errorf("GET %s: %q", url, b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serveUI returned %v after the interrupt, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serveUI still serves 5s after the interrupt")
	}
}

func TestUIWithoutAClusterSaysSo(t *testing.T) {
	_, err := runRoot(t, "ui", "--cluster", "none-here", "--state-dir", t.TempDir(), "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "no local cluster") {
		t.Errorf("podnet ui without a cluster: %v, want no local cluster", err)
	}
}
