package testserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestServerAnswersWithPodAndClient(t *testing.T) {
	tcp, udp := freePort(t, "tcp"), freePort(t, "udp")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- Serve(ctx, Config{Pod: "web-1", TCPPorts: []int{tcp}, UDPPorts: []int{udp}, Host: "127.0.0.1"})
	}()

	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + itoa(tcp) + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never answered on TCP: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pod, client, ok := ParseReply(body)
	if !ok || pod != "web-1" || !strings.HasPrefix(client, "127.0.0.1:") {
		t.Errorf("TCP reply %q: pod=%q client=%q", body, pod, client)
	}

	c, err := net.Dial("udp", "127.0.0.1:"+itoa(udp))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	pod, client, ok = ParseReply(string(buf[:n]))
	if !ok || pod != "web-1" || client != c.LocalAddr().String() {
		t.Errorf("UDP reply %q: pod=%q client=%q, want client %s", buf[:n], pod, client, c.LocalAddr())
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestServeFailsWhenAPortIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Serve(context.Background(), Config{Pod: "x", TCPPorts: []int{ln.Addr().(*net.TCPAddr).Port}, Host: "127.0.0.1"})
	if err == nil {
		t.Fatal("Serve succeeded on a taken port")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
