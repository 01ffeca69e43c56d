// Command recorder is a test-only chained CNI plugin: it appends each call
// (command and stdin) to the file named by its config's "out" field and, on
// ADD, passes prevResult through unchanged.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

type conf struct {
	types.PluginConf
	Out string `json:"out"`
}

func record(cmd string, args *skel.CmdArgs) (*conf, error) {
	c := &conf{}
	if err := json.Unmarshal(args.StdinData, c); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(c.Out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	line, _ := json.Marshal(map[string]any{"command": cmd, "stdin": json.RawMessage(args.StdinData)})
	_, err = fmt.Fprintf(f, "%s\n", line)
	return c, err
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			c, err := record("ADD", args)
			if err != nil {
				return err
			}
			if err := version.ParsePrevResult(&c.PluginConf); err != nil {
				return err
			}
			if c.PrevResult == nil {
				return fmt.Errorf("recorder: no prevResult")
			}
			return types.PrintResult(c.PrevResult, c.CNIVersion)
		},
		Del:    func(args *skel.CmdArgs) error { _, err := record("DEL", args); return err },
		Check:  func(args *skel.CmdArgs) error { _, err := record("CHECK", args); return err },
		GC:     func(args *skel.CmdArgs) error { _, err := record("GC", args); return err },
		Status: func(args *skel.CmdArgs) error { _, err := record("STATUS", args); return err },
	}, version.All, "recorder (test plugin)")
}
