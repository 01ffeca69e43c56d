package kubeletapitest

import (
	"fmt"
	"io"
	"net"
	"os"
)

// ServeEcho is the pod's side of EchoThrough, for a test binary that is
// also a pod's program: it echoes every TCP connection on addr, prints
// "listening" once it accepts, and never returns (exit status 1 when it
// cannot listen).
func ServeEcho(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}
