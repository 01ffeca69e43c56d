// Package version holds podnet's version, set at build time with
// -ldflags "-X github.com/podnet/podnet/internal/version.Version=...".
package version

// Version is podnet's version; "dev" in untagged builds.
var Version = "dev"
