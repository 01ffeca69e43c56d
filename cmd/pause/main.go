// Command pause is the sandbox ("pause") image's program: the process that
// holds a pod's namespaces while its containers come and go. It does nothing
// but wait: on SIGTERM or SIGINT it exits 0, and as PID 1 of a pod that
// shares its PID namespace it reaps the orphans re-parented to it (the
// kernel sends it SIGCHLD), so they never pile up as zombies. Built static
// (CGO_ENABLED=0) into registry.k8s.io/pause by `make image`.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "pause takes no arguments: it waits for SIGTERM or SIGINT and reaps children")
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every child that has exited (SIGCHLD signals coalesce, so
// one may stand for several).
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
