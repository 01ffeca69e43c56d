package cni

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	cnins "github.com/containernetworking/cni/pkg/ns"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podnet/podnet/internal/ipam"
)

// SupportedVersions lists the CNI versions podnet-cni accepts and answers in.
var SupportedVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Funcs returns the plugin's verbs for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: Add, Del: Del, Check: Check, GC: GC, Status: Status}
}

func openAllocator(conf *NetConf) (*ipam.Allocator, *ipam.DiskStore, error) {
	store, err := ipam.NewDiskStore(conf.DataDir, conf.Name)
	if err != nil {
		return nil, nil, newErr(types.ErrIOFailure, "podnet-cni: %v", err)
	}
	return ipam.NewAllocator(store, conf.Sets, conf.Excluded), store, nil
}

func checkIfName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return newErr(types.ErrInvalidEnvironmentVariables, "podnet-cni: CNI_IFNAME %q is not a valid interface name (1-15 bytes)", name)
	}
	for _, c := range name {
		if c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return newErr(types.ErrInvalidEnvironmentVariables, "podnet-cni: CNI_IFNAME %q is not a valid interface name", name)
		}
	}
	return nil
}

// checkNotOwnNS refuses a CNI_NETNS that is the plugin's own network
// namespace (unless CNI_NETNS_OVERRIDE says so), before anything is
// acquired. skel checks it too, but only after ADD has wired the pod and
// printed its result, which would leave both and a second JSON object.
func checkNotOwnNS(args *skel.CmdArgs) error {
	if o := strings.ToUpper(args.NetnsOverride); o == "TRUE" || o == "1" {
		return nil
	}
	same, terr := cnins.CheckNetNS(args.Netns)
	if terr != nil {
		return terr
	}
	if same {
		return newErr(types.ErrInvalidNetNS, "podnet-cni: CNI_NETNS %q is the plugin's own network namespace; a pod needs one of its own", args.Netns)
	}
	return nil
}

// Add wires a pod into the network: addresses from IPAM, a routed veth pair,
// and prints the result in the config's CNI version.
func Add(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	res, err := add(conf, args)
	if err != nil {
		return err
	}
	return types.PrintResult(res, conf.CNIVersion)
}

func add(conf *NetConf, args *skel.CmdArgs) (_ *types100.Result, err error) {
	if err := checkIfName(args.IfName); err != nil {
		return nil, err
	}
	if err := checkNotOwnNS(args); err != nil {
		return nil, err
	}
	podNS, pod, err := openPodNS(args.Netns)
	if err != nil {
		return nil, newErr(types.ErrUnknownContainer, "podnet-cni: cannot open network namespace %q: %v", args.Netns, err)
	}
	defer podNS.Close()
	defer pod.Close()

	alloc, store, err := openAllocator(conf)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	owner := ipam.Owner{ContainerID: args.ContainerID, IfName: args.IfName}
	allocs, err := alloc.Allocate(owner)
	if err != nil {
		var dup *ipam.DuplicateError
		var ex *ipam.ExhaustedError
		switch {
		case errors.As(err, &dup):
			return nil, newErr(ErrAlreadyAttached, "podnet-cni: %v", err)
		case errors.As(err, &ex):
			return nil, newErr(types.ErrTryAgainLater, "podnet-cni: %v", err)
		}
		return nil, newErr(types.ErrIOFailure, "podnet-cni: %s", joinProblems([]error{err}))
	}
	defer func() {
		if err != nil {
			if _, rerr := alloc.Release(owner); rerr != nil {
				err = newErr(types.ErrInternal, "%v (and releasing its addresses failed: %v)", err, rerr)
			}
		}
	}()

	at := attachment{network: conf.Name, containerID: args.ContainerID, ifName: args.IfName, mtu: conf.MTU}
	for _, a := range allocs {
		at.addrs = append(at.addrs, a.IP)
	}
	w, err := setupVeth(podNS, pod, at)
	if err != nil {
		return nil, newErr(types.ErrInternal, "podnet-cni: %v", err)
	}
	return buildResult(conf, args, w, at.addrs), nil
}

func buildResult(conf *NetConf, args *skel.CmdArgs, w wired, addrs []netip.Addr) *types100.Result {
	res := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: w.hostName, Mac: w.hostMAC.String()},
			{Name: args.IfName, Mac: w.podMAC.String(), Sandbox: args.Netns},
		},
		DNS: conf.DNS,
	}
	for _, ip := range addrs {
		gw := gatewayFor(ip)
		res.IPs = append(res.IPs, &types100.IPConfig{
			Interface: types100.Int(1),
			Address:   *hostPrefix(ip),
			Gateway:   gw.AsSlice(),
		})
	}
	for _, gw := range w.defaultVia {
		res.Routes = append(res.Routes, &types.Route{Dst: *defaultRoute(0, gw).Dst, GW: gw.AsSlice()})
	}
	return res
}

// Del removes a pod's attachment. It succeeds when there is nothing left to
// remove: a missing namespace, interface or reservation is not an error. It
// needs only the network name and dataDir, so it works even with a config
// whose ranges have since become invalid.
func Del(args *skel.CmdArgs) error {
	conf, terr := decodeBasic(args.StdinData)
	if terr != nil {
		return terr
	}
	var errs []error
	if args.IfName != "" {
		if err := deleteHostLink(HostIfName(args.ContainerID, args.IfName)); err != nil {
			errs = append(errs, err)
		}
	}
	store, err := ipam.NewDiskStore(conf.DataDir, conf.Name)
	if err != nil {
		errs = append(errs, err)
	} else {
		defer store.Close()
		alloc := ipam.NewAllocator(store, nil, nil)
		if _, err := alloc.Release(ipam.Owner{ContainerID: args.ContainerID, IfName: args.IfName}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return newErr(types.ErrIOFailure, "podnet-cni: DEL %s/%s: %s", args.ContainerID, args.IfName, joinProblems(errs))
	}
	return nil
}

// GC releases every reservation not among the runtime's valid attachments and
// removes their host interfaces, and any host interface of this network
// whose attachment is not valid.
func GC(args *skel.CmdArgs) error {
	conf, terr := decodeBasic(args.StdinData)
	if terr != nil {
		return terr
	}
	valid := make([]ipam.Owner, 0, len(conf.ValidAttachments))
	validSet := map[ipam.Owner]bool{}
	for _, a := range conf.ValidAttachments {
		o := ipam.Owner{ContainerID: a.ContainerID, IfName: a.IfName}
		valid = append(valid, o)
		validSet[o] = true
	}
	store, err := ipam.NewDiskStore(conf.DataDir, conf.Name)
	if err != nil {
		return newErr(types.ErrIOFailure, "podnet-cni: %v", err)
	}
	defer store.Close()
	var errs []error
	released, err := ipam.NewAllocator(store, nil, nil).GC(valid)
	if err != nil {
		errs = append(errs, err)
	}
	done := map[string]bool{}
	for _, r := range released {
		name := HostIfName(r.Owner.ContainerID, r.Owner.IfName)
		if !done[name] {
			done[name] = true
			if err := deleteHostLink(name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	links, err := hostLinksOf(conf.Name)
	if err != nil {
		errs = append(errs, fmt.Errorf("list links: %w", err))
	}
	for name, at := range links {
		if !done[name] && !validSet[ipam.Owner{ContainerID: at[0], IfName: at[1]}] {
			if err := deleteHostLink(name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return newErr(types.ErrIOFailure, "podnet-cni: GC: %s", joinProblems(errs))
	}
	return nil
}

// Status reports whether the plugin could serve an ADD now: the config is
// valid, the IPAM store is usable and every range set has a free address.
func Status(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	store, err := ipam.NewDiskStore(conf.DataDir, conf.Name)
	if err != nil {
		return newErr(types.ErrPluginNotAvailable, "podnet-cni: %v", err)
	}
	defer store.Close()
	if err := ipam.NewAllocator(store, conf.Sets, conf.Excluded).CheckFree(); err != nil {
		return newErr(types.ErrPluginNotAvailable, "podnet-cni: %v", err)
	}
	return nil
}

// Check verifies that an attachment still matches its prevResult: both ends
// of the veth, the pod's addresses and default routes, the host routes, and
// the IPAM reservations.
func Check(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return newErr(types.ErrDecodingFailure, "podnet-cni: cannot parse prevResult: %v", err)
	}
	if conf.PrevResult == nil {
		return newErr(types.ErrInvalidNetworkConfig, "podnet-cni: CHECK needs prevResult in the config")
	}
	prev, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return newErr(types.ErrDecodingFailure, "podnet-cni: cannot convert prevResult: %v", err)
	}
	var problems []error
	hostName := HostIfName(args.ContainerID, args.IfName)
	want, err := expectedFromResult(prev, args, hostName)
	if err != nil {
		return newErr(ErrCheckFailed, "podnet-cni: CHECK: %v", err)
	}
	problems = append(problems, checkDatapath(args.Netns, args.IfName, want)...)

	store, err := ipam.NewDiskStore(conf.DataDir, conf.Name)
	if err != nil {
		return newErr(types.ErrIOFailure, "podnet-cni: %v", err)
	}
	defer store.Close()
	owned, err := ipam.NewAllocator(store, conf.Sets, conf.Excluded).Owned(ipam.Owner{ContainerID: args.ContainerID, IfName: args.IfName})
	if err != nil {
		return newErr(types.ErrIOFailure, "podnet-cni: %v", err)
	}
	for _, ip := range want.addrs {
		if !slices.Contains(owned, ip) {
			problems = append(problems, fmt.Errorf("address %s is not reserved for this container in %s", ip, store.Dir()))
		}
	}
	if len(problems) > 0 {
		return newErr(ErrCheckFailed, "podnet-cni: CHECK %s/%s: %v", args.ContainerID, args.IfName, joinProblems(problems))
	}
	return nil
}

// joinProblems joins errors, and the errors they join, into one line.
func joinProblems(errs []error) string {
	var msgs []string
	var walk func(prefix string, err error)
	walk = func(prefix string, err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(prefix, e)
			}
			return
		}
		if w, ok := err.(interface{ Unwrap() error }); ok {
			// A wrapper of a joined error: keep its context per item.
			if j, ok := w.Unwrap().(interface{ Unwrap() []error }); ok {
				ctx := strings.TrimSuffix(err.Error(), w.Unwrap().Error())
				for _, e := range j.Unwrap() {
					walk(prefix+ctx, e)
				}
				return
			}
		}
		msgs = append(msgs, prefix+err.Error())
	}
	for _, e := range errs {
		walk("", e)
	}
	return strings.Join(msgs, "; ")
}

// expected is what CHECK looks for, taken from prevResult.
type expected struct {
	hostName   string
	podMAC     string
	addrs      []netip.Addr
	defaultVia []netip.Addr // gateways of prevResult's default routes
}

func expectedFromResult(prev *types100.Result, args *skel.CmdArgs, hostName string) (expected, error) {
	want := expected{hostName: hostName}
	podIdx := -1
	hostFound := false
	for i, in := range prev.Interfaces {
		switch {
		case in.Name == args.IfName && in.Sandbox == args.Netns:
			podIdx = i
			want.podMAC = in.Mac
		case in.Name == hostName && in.Sandbox == "":
			hostFound = true
		}
	}
	if podIdx < 0 {
		return want, fmt.Errorf("prevResult has no interface %q in sandbox %q", args.IfName, args.Netns)
	}
	if !hostFound {
		return want, fmt.Errorf("prevResult has no host interface %q", hostName)
	}
	for _, ipc := range prev.IPs {
		if ipc.Interface == nil || *ipc.Interface != podIdx {
			continue
		}
		a, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			return want, fmt.Errorf("prevResult has a bad address %v", ipc.Address)
		}
		want.addrs = append(want.addrs, a.Unmap())
	}
	if len(want.addrs) == 0 {
		return want, fmt.Errorf("prevResult has no address on %q", args.IfName)
	}
	for _, r := range prev.Routes {
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			if gw, ok := netip.AddrFromSlice(r.GW); ok {
				want.defaultVia = append(want.defaultVia, gw.Unmap())
			}
		}
	}
	return want, nil
}
