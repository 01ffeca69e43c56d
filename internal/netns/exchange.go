package netns

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// TCPSeen listens on addr (any port) inside serverNS, connects to it from
// clientNS — from local when it is valid — reads a greeting, and returns the
// client address the server saw. It is how tests and the self-check show
// that traffic crossed namespaces and whether its source was rewritten.
func TCPSeen(serverNS, clientNS string, addr, local netip.Addr, timeout time.Duration) (netip.Addr, error) {
	var ln net.Listener
	if err := Do(serverNS, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	}); err != nil {
		return netip.Addr{}, err
	}
	defer ln.Close()
	seen := make(chan netip.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(seen)
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("hello\n"))
		seen <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	}()
	var conn net.Conn
	err := Do(clientNS, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		if local.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
		}
		conn, err = d.Dial("tcp", ln.Addr().String())
		return err
	})
	if err != nil {
		return netip.Addr{}, err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 6)
	if _, err := conn.Read(buf); err != nil {
		return netip.Addr{}, err
	}
	select {
	case a, ok := <-seen:
		if !ok {
			return netip.Addr{}, errors.New("accept failed")
		}
		return a, nil
	case <-time.After(timeout):
		return netip.Addr{}, errors.New("the server never accepted")
	}
}
