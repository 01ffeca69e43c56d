package wireguard

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
)

// Implementations of the device.
const (
	ImplAuto      = "auto"
	ImplKernel    = "kernel"
	ImplUserspace = "userspace"
)

// tunnel is the open WireGuard device of this node.
type tunnel struct {
	// set at open, read-only
	iface  string // the interface, Device
	handle string // its name for wgctrl: iface (kernel), the UAPI socket's name (user space)
	kernel bool
	// user space only
	dev  *device.Device
	uapi net.Listener
}

// openTunnel makes the device exist and be up: the kernel's when impl
// allows and the kernel has WireGuard, else a user-space device in this
// process on a persistent TUN. An existing device of the right kind is
// taken over (the TUN of a previous agent, with its routes). uapiName
// names the user-space device's control socket (/var/run/wireguard/
// <uapiName>.sock), through which wgctrl configures it.
func openTunnel(impl, uapiName string, mtu int, log *slog.Logger) (*tunnel, error) {
	existing, _ := netlink.LinkByName(Device)
	if impl != ImplUserspace {
		t, err := openKernel(existing, mtu)
		if err == nil || impl == ImplKernel {
			return t, err
		}
		log.Info("no WireGuard in the kernel; using the user-space device", "reason", err)
		existing, _ = netlink.LinkByName(Device)
	}
	if existing != nil && existing.Type() != "tuntap" {
		if err := netlink.LinkDel(existing); err != nil {
			return nil, fmt.Errorf("remove %s (%s): %w", Device, existing.Type(), err)
		}
	}
	return openUserspace(uapiName, mtu, log)
}

func openKernel(existing netlink.Link, mtu int) (*tunnel, error) {
	if existing != nil && existing.Type() != "wireguard" {
		if err := netlink.LinkDel(existing); err != nil {
			return nil, fmt.Errorf("remove %s (%s): %w", Device, existing.Type(), err)
		}
		existing = nil
	}
	if existing == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = Device, mtu
		if err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: attrs}); err != nil {
			return nil, fmt.Errorf("create a kernel WireGuard device: %w", err)
		}
	}
	if err := linkUp(mtu); err != nil {
		return nil, err
	}
	return &tunnel{iface: Device, handle: Device, kernel: true}, nil
}

func openUserspace(uapiName string, mtu int, log *slog.Logger) (*tunnel, error) {
	td, err := tun.CreateTUN(Device, mtu)
	if err != nil {
		return nil, fmt.Errorf("TUN device %s: %w%s", Device, err, tunHint(tunDevice, err))
	}
	nt, ok := td.(*tun.NativeTun)
	if !ok {
		td.Close()
		return nil, fmt.Errorf("TUN device %s: unexpected type %T", Device, td)
	}
	// Persistent: the device and the routes into it outlive this process,
	// so while the agent restarts no packet takes another path.
	if err := unix.IoctlSetInt(int(nt.File().Fd()), unix.TUNSETPERSIST, 1); err != nil {
		td.Close()
		return nil, fmt.Errorf("make %s persistent: %w", Device, err)
	}
	logger := &device.Logger{
		Verbosef: func(string, ...any) {},
		Errorf:   func(f string, a ...any) { log.Warn("wireguard: " + fmt.Sprintf(f, a...)) },
	}
	dev := device.NewDevice(td, conn.NewDefaultBind(), logger)
	file, err := ipc.UAPIOpen(uapiName)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("control socket %s: %w", uapiName, err)
	}
	l, err := ipc.UAPIListen(uapiName, file)
	if err != nil {
		file.Close()
		dev.Close()
		return nil, fmt.Errorf("control socket %s: %w", uapiName, err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	if err := linkUp(mtu); err != nil {
		l.Close()
		dev.Close()
		return nil, err
	}
	return &tunnel{iface: Device, handle: uapiName, dev: dev, uapi: l}, nil
}

// tunDevice is where the user-space device opens its TUN interface.
const tunDevice = "/dev/net/tun"

// tunHint says what a container lacks when the TUN device cannot be
// opened: the device itself (a pod has it only as a hostPath; deploy/'s
// components/wireguard-userspace mounts it), or the runtime's leave to
// use it (its device rules).
func tunHint(dev string, err error) string {
	if _, serr := os.Stat(dev); errors.Is(serr, fs.ErrNotExist) {
		return fmt.Sprintf(" (there is no %s here: in a pod, mount the host's, as deploy/components/wireguard-userspace does; or use the kernel's WireGuard)", dev)
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Sprintf(" (%s, character device 10:200, is denied: in a pod, the runtime's device rules must allow it, as runc's defaults do except in runc 1.2.0 to 1.2.3; or use the kernel's WireGuard)", dev)
	}
	return ""
}

// linkUp sets the device's MTU and brings it up.
func linkUp(mtu int) error {
	link, err := netlink.LinkByName(Device)
	if err != nil {
		return err
	}
	if link.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(link, mtu); err != nil {
			return fmt.Errorf("MTU of %s: %w", Device, err)
		}
	}
	return netlink.LinkSetUp(link)
}

// index is the device's interface index (0 if it is gone).
func (t *tunnel) index() int {
	link, err := netlink.LinkByName(t.iface)
	if err != nil {
		return 0
	}
	return link.Attrs().Index
}

// close stops a user-space device's goroutines and control socket; the
// persistent TUN, and a kernel device, stay.
func (t *tunnel) close() {
	if t.dev != nil {
		t.uapi.Close()
		t.dev.Close()
	}
}

// DeleteDevice removes the WireGuard device if it exists (encryption off,
// node cleanup). The routes into it go with it.
func DeleteDevice() error {
	link, err := netlink.LinkByName(Device)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", Device, err)
	}
	return nil
}
