package usbsim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The testbed layout below mirrors what umockdev's Testbed.add_devicev
// (umockdev 0.17) writes, so that the preload library and libudev see the
// same tree: a sysfs directory per device with attribute files and a
// `uevent` file holding the udev properties, a `subsystem` symlink, the
// /sys/bus/usb/devices and /sys/dev/char links, the device node as a
// regular file under $UMOCKDEV_DIR/dev, and $UMOCKDEV_DIR/dev/.node/<node>
// (a symlink to "MAJOR:MINOR") from which the preload fakes st_rdev.

const (
	pciPath     = "/sys/devices/pci0000:00/0000:00:14.0"
	rootHubPath = pciPath + "/usb1"
	usbMajor    = 189
)

type sysDevice struct {
	sysPath   string            // /sys/devices/...
	subsystem string            // usb, pci
	attrs     map[string][]byte // sysfs attributes
	props     [][2]string       // udev properties (uevent file)
	devNode   string            // e.g. bus/usb/001/002, "" for none
	devNum    string            // "189:1"
	nodeData  []byte            // contents of the /dev node
}

func (b *Bus) real(p string) string { return filepath.Join(b.root, p) }

func (b *Bus) writeDevice(d sysDevice) error {
	dir := b.real(d.sysPath)
	if _, err := os.Stat(filepath.Join(dir, "uevent")); err == nil {
		return fmt.Errorf("usbsim: device %s already exists", d.sysPath)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	busDir := b.real("/sys/bus/" + d.subsystem + "/devices")
	if err := os.MkdirAll(busDir, 0o755); err != nil {
		return err
	}
	rel, _ := filepath.Rel(busDir, dir)
	if err := os.Symlink(rel, filepath.Join(busDir, filepath.Base(d.sysPath))); err != nil {
		return err
	}
	rel, _ = filepath.Rel(dir, b.real("/sys/bus/"+d.subsystem))
	if err := os.Symlink(rel, filepath.Join(dir, "subsystem")); err != nil {
		return err
	}
	var ue strings.Builder
	for _, kv := range d.props {
		fmt.Fprintf(&ue, "%s=%s\n", kv[0], kv[1])
	}
	if err := os.WriteFile(filepath.Join(dir, "uevent"), []byte(ue.String()), 0o644); err != nil {
		return err
	}
	for k, v := range d.attrs {
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o644); err != nil {
			return err
		}
	}
	if d.devNum == "" {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "dev"), []byte(d.devNum+"\n"), 0o644); err != nil {
		return err
	}
	charDir := b.real("/sys/dev/char")
	if err := os.MkdirAll(charDir, 0o755); err != nil {
		return err
	}
	rel, _ = filepath.Rel(charDir, dir)
	if err := os.Symlink(rel, filepath.Join(charDir, d.devNum)); err != nil && !os.IsExist(err) {
		return err
	}
	if d.devNode == "" {
		return nil
	}
	node := b.real("/dev/" + d.devNode)
	if err := os.MkdirAll(filepath.Dir(node), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(node, d.nodeData, 0o644); err != nil {
		return err
	}
	info := b.real("/dev/.node")
	if err := os.MkdirAll(info, 0o755); err != nil {
		return err
	}
	return os.Symlink(d.devNum, filepath.Join(info, strings.ReplaceAll(d.devNode, "/", "_")))
}

// removeDevice undoes writeDevice, like Testbed.remove_device.
func (b *Bus) removeDevice(d sysDevice) error {
	var errs []error
	rm := func(p string) {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	if d.devNode != "" {
		rm(b.real("/dev/" + d.devNode))
		rm(b.real("/dev/.node/" + strings.ReplaceAll(d.devNode, "/", "_")))
	}
	if d.devNum != "" {
		rm(b.real("/sys/dev/char/" + d.devNum))
	}
	rm(b.real("/sys/bus/" + d.subsystem + "/devices/" + filepath.Base(d.sysPath)))
	if err := os.RemoveAll(b.real(d.sysPath)); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("usbsim: remove %s: %v", d.sysPath, errs)
	}
	return nil
}

func attr(s string) []byte { return []byte(s + "\n") }

func (b *Bus) writeRootHub() error {
	if _, err := os.Stat(b.real(rootHubPath + "/uevent")); err == nil {
		return nil // another Bus in this testbed wrote it
	}
	if _, err := os.Stat(b.real(pciPath + "/uevent")); err != nil {
		if err := b.writeDevice(sysDevice{
			sysPath:   pciPath,
			subsystem: "pci",
			attrs: map[string][]byte{
				"vendor": attr("0x8086"), "device": attr("0xa36d"), "class": attr("0x0c0330"),
			},
			props: [][2]string{{"DRIVER", "xhci_hcd"}, {"PCI_CLASS", "C0330"},
				{"PCI_ID", "8086:A36D"}, {"PCI_SLOT_NAME", "0000:00:14.0"}},
		}); err != nil {
			return err
		}
	}
	desc := rootHubDescriptors()
	return b.writeDevice(sysDevice{
		sysPath:   rootHubPath,
		subsystem: "usb",
		attrs: map[string][]byte{
			"idVendor": attr("1d6b"), "idProduct": attr("0002"), "busnum": attr("1"), "devnum": attr("1"),
			"bConfigurationValue": attr("1"), "bNumConfigurations": attr("1"), "bNumInterfaces": attr(" 1"),
			"bDeviceClass": attr("09"), "speed": attr("480"), "maxchild": attr("4"), "devpath": attr("0"),
			"descriptors": desc, "manufacturer": attr("Linux xhci-hcd"), "product": attr("xHCI Host Controller"),
		},
		props: [][2]string{{"DEVNAME", "bus/usb/001/001"}, {"DEVTYPE", "usb_device"}, {"DRIVER", "usb"},
			{"BUSNUM", "001"}, {"DEVNUM", "001"}, {"MAJOR", "189"}, {"MINOR", "0"},
			{"PRODUCT", "1d6b/2/100"}, {"TYPE", "9/0/1"}},
		devNode:  "bus/usb/001/001",
		devNum:   "189:0",
		nodeData: desc,
	})
}

// quantisSysDevice describes the Quantis device at port `port` of bus 1
// with device address addr.
func quantisSysDevice(cfg DeviceConfig, port, addr int) sysDevice {
	desc := append(deviceDescriptor(cfg.VendorID, cfg.ProductID), configDescriptor()...)
	node := fmt.Sprintf("bus/usb/001/%03d", addr)
	minor := addr - 1 // bus 1
	active := attr("1")
	if cfg.Unconfigured {
		active = []byte{} // the kernel shows an empty file
	}
	name := fmt.Sprintf("1-%d", port)
	return sysDevice{
		sysPath:   rootHubPath + "/" + name,
		subsystem: "usb",
		attrs: map[string][]byte{
			"idVendor": attr(fmt.Sprintf("%04x", cfg.VendorID)), "idProduct": attr(fmt.Sprintf("%04x", cfg.ProductID)),
			"busnum": attr("1"), "devnum": attr(fmt.Sprint(addr)), "devpath": attr(fmt.Sprint(port)),
			"bConfigurationValue": active, "bNumConfigurations": attr("1"), "bNumInterfaces": attr(" 1"),
			"bDeviceClass": attr("ff"), "bcdDevice": attr("0100"), "bMaxPower": attr("300mA"),
			"speed": attr("480"), "maxchild": attr("0"), "descriptors": desc,
			"manufacturer": attr(Manufacturer), "product": attr(Product), "serial": attr(cfg.Serial),
		},
		props: [][2]string{{"DEVNAME", node}, {"DEVTYPE", "usb_device"}, {"DRIVER", "usb"},
			{"BUSNUM", "001"}, {"DEVNUM", fmt.Sprintf("%03d", addr)},
			{"MAJOR", fmt.Sprint(usbMajor)}, {"MINOR", fmt.Sprint(minor)},
			{"PRODUCT", fmt.Sprintf("%x/%x/100", cfg.VendorID, cfg.ProductID)}, {"TYPE", "255/0/0"}},
		devNode:  node,
		devNum:   fmt.Sprintf("%d:%d", usbMajor, minor),
		nodeData: desc,
	}
}
