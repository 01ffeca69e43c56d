// Package e2e holds podnet's end-to-end tests: real local clusters started
// with `podnet up`, real pods in network namespaces, real packets and real
// kubectl. See main_test.go for the fixture conventions; `make test` runs them
// as root after building the control-plane binaries.
package e2e
