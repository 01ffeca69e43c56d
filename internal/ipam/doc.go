// Package ipam hands out pod IP addresses from a node's pod ranges.
//
// The allocator is pure logic over a Store: it picks the next free address of
// each range set (one set per address family, typically), round-robin after the
// last address it reserved so that a freed address is not handed out again at
// once. Everything that must survive a process or be shared between processes
// lives in the Store; the Store's lock makes an allocation exclusive across
// processes (the CNI plugin runs as one process per pod).
//
// The disk store (NewDiskStore) keeps one symbolic link per reserved address,
// named after the address and pointing at its owner ("ifname/containerID").
// Creating a symbolic link is one atomic, exclusive system call, so a process
// killed at any moment leaves either no reservation or a complete one: never a
// half-written file and never two owners for one address. Addresses reserved by
// a runtime that then died are returned by GC.
//
// Dangerous: the store directory is the only record of who owns what. Deleting
// it while pods run makes their addresses free for the next pod.
package ipam
