// Command etcd is etcd's own server binary, built from the pinned
// go.etcd.io/etcd/server/v3 module. It mirrors go.etcd.io/etcd/server/v3/main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
