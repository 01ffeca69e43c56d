package cni

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// newestVersion is the newest CNI version podnet-cni speaks: the version of
// an error whose request's config declares none that can be read.
const newestVersion = "1.1.0"

// Main runs the plugin as a runtime executes it and returns the exit code.
// The verbs go through skel; Main adds what skel leaves out of the CNI
// specification: VERSION answers with the cniVersion it was asked in
// (skel always says its own), and every error object carries cniVersion,
// the version of the request's config (skel writes none). Without
// CNI_COMMAND (a person running it by hand) stdin is not read: skel says
// what the plugin is on stderr.
func Main(about string) int {
	cmd := os.Getenv("CNI_COMMAND")
	if cmd == "" {
		return printError(os.Stdout, skel.PluginMainFuncsWithError(Funcs(), SupportedVersions, about), newestVersion)
	}
	stdin, err := io.ReadAll(os.Stdin)
	if err != nil {
		return printError(os.Stdout, newErr(types.ErrIOFailure, "podnet-cni: reading stdin: %v", err), newestVersion)
	}
	asked := requestedVersion(stdin)
	if cmd == "VERSION" {
		if err := writeVersion(os.Stdout, asked); err != nil {
			return printError(os.Stdout, newErr(types.ErrIOFailure, "podnet-cni: %v", err), asked)
		}
		return 0
	}
	if err := replaceStdin(stdin); err != nil {
		return printError(os.Stdout, newErr(types.ErrIOFailure, "podnet-cni: %v", err), asked)
	}
	return printError(os.Stdout, skel.PluginMainFuncsWithError(Funcs(), SupportedVersions, about), asked)
}

// requestedVersion is the cniVersion of a request's config as CNI reads it
// ("0.1.0" when the field is missing), or newestVersion when the input is
// no JSON object with a string cniVersion. Such input has no version; the
// error about it is written in the newest one, whose error object has the
// same fields as every earlier one, so a runtime of any version reads it.
func requestedVersion(stdin []byte) string {
	v, err := (&version.ConfigDecoder{}).Decode(stdin)
	if err != nil {
		return newestVersion
	}
	return v
}

// writeVersion writes VERSION's result: cniVersion as asked (even one the
// plugin does not speak: supportedVersions says which it does).
func writeVersion(w io.Writer, asked string) error {
	res := struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}{asked, SupportedVersions.SupportedVersions()}
	if err := json.NewEncoder(w).Encode(res); err != nil {
		return fmt.Errorf("write VERSION result: %w", err)
	}
	return nil
}

// printError writes e as the specification's error object, with
// cniVersion, and returns the exit code: 0 when e is nil, else 1.
func printError(w io.Writer, e *types.Error, cniVersion string) int {
	if e == nil {
		return 0
	}
	out := struct {
		CNIVersion string `json:"cniVersion"`
		*types.Error
	}{cniVersion, e}
	b, err := json.MarshalIndent(out, "", "    ")
	if err == nil {
		_, err = w.Write(append(b, '\n'))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "podnet-cni: writing the error %q failed: %v\n", e.Error(), err)
	}
	return 1
}

// replaceStdin makes os.Stdin a pipe that holds data, for skel, which
// reads the config from os.Stdin itself.
func replaceStdin(data []byte) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("stdin pipe: %w", err)
	}
	go func() {
		_, _ = w.Write(data) // skel reads everything; a failure shows as a short config
		w.Close()
	}()
	os.Stdin = r
	return nil
}
