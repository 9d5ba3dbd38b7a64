package usbsim

import (
	"encoding/binary"
	"io"
	"net"
	"syscall"
)

// umockdev ioctl socket protocol (src/libumockdev-preload.c, umockdev 0.17):
// every message is three native uint64s. The client sends {REQ_IOCTL,
// request, argp} (or REQ_READ/REQ_WRITE for read(2)/write(2) on the node);
// the server may send {RES_READ_MEM, addr, n} and read n bytes, or
// {RES_WRITE_MEM, addr, n} followed by n bytes, and ends with {RES_DONE,
// result, errno}. {RES_RUN} makes the client perform the call itself and
// report {REQ_RES, result, errno}.
const (
	reqIoctl    = 1
	reqRes      = 2
	reqRead     = 7
	reqWrite    = 8
	resDone     = 3
	resRun      = 4
	resReadMem  = 5
	resWriteMem = 6
)

// usbdevfs requests, x86-64 values (linux/usbdevice_fs.h).
const (
	ioGetCapabilities = 0x8004551A
	ioClaimInterface  = 0x8004550F
	ioReleaseIface    = 0x80045510
	ioClearHalt       = 0x80045515
	ioSetInterface    = 0x80085504
	ioSetConfig       = 0x80045505
	ioReset           = 0x00005514
	ioSubmitURB       = 0x8038550A
	ioDiscardURB      = 0x0000550B
	ioReapURB         = 0x4008550C
	ioReapURBNDelay   = 0x4008550D

	// USBDEVFS_CAP_NO_PACKET_SIZE_LIM | BULK_SCATTER_GATHER |
	// REAP_AFTER_DISCONNECT: libusb submits a bulk transfer as one URB.
	capabilities = 0x1C

	urbSize        = 56 // struct usbdevfs_urb on 64-bit Linux
	urbTypeControl = 2
	urbTypeBulk    = 3
)

// maxURB bounds what the emulated device accepts in one URB.
const maxURB = 1 << 20

type urb struct {
	addr   uint64
	raw    [urbSize]byte
	typ    byte
	ep     byte
	buf    uint64
	length int
	status int32
	data   []byte // IN data to copy out at reap
	off    int    // offset of data in the buffer (8 for control)
}

type conn struct {
	dev       *Device
	c         *net.UnixConn
	gone      bool   // device unplugged (guarded by dev.mu)
	pending   []*urb // guarded by dev.mu
	completed []*urb // guarded by dev.mu
	hdr       [24]byte
}

// disconnect is called with dev.mu held.
func (c *conn) disconnect() {
	c.gone = true
	for _, u := range c.pending {
		u.status = -int32(syscall.ESHUTDOWN)
		u.data = nil
		c.completed = append(c.completed, u)
	}
	c.pending = nil
}

func (c *conn) recv() (cmd, a1, a2 uint64, err error) {
	if _, err = io.ReadFull(c.c, c.hdr[:]); err != nil {
		return
	}
	return binary.LittleEndian.Uint64(c.hdr[0:]), binary.LittleEndian.Uint64(c.hdr[8:]),
		binary.LittleEndian.Uint64(c.hdr[16:]), nil
}

func (c *conn) send(cmd, a1, a2 uint64) error {
	var m [24]byte
	binary.LittleEndian.PutUint64(m[0:], cmd)
	binary.LittleEndian.PutUint64(m[8:], a1)
	binary.LittleEndian.PutUint64(m[16:], a2)
	_, err := c.c.Write(m[:])
	return err
}

func (c *conn) readMem(addr uint64, n int) ([]byte, error) {
	if err := c.send(resReadMem, addr, uint64(n)); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c.c, b)
	return b, err
}

func (c *conn) writeMem(addr uint64, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := c.send(resWriteMem, addr, uint64(len(b))); err != nil {
		return err
	}
	_, err := c.c.Write(b)
	return err
}

func (c *conn) done(res int64, errno syscall.Errno) error {
	return c.send(resDone, uint64(res), uint64(errno))
}

func (c *conn) serve() {
	defer c.c.Close()
	for {
		cmd, a1, a2, err := c.recv()
		if err != nil {
			return // the program closed the node
		}
		switch cmd {
		case reqIoctl:
			err = c.ioctl(uint32(a1), a2)
		case reqRead, reqWrite:
			// read(2)/write(2) on the node: let the preload do it on
			// the regular file holding the descriptors.
			if err = c.send(resRun, 0, 0); err == nil {
				var r, e uint64
				if _, r, e, err = c.recv(); err == nil {
					err = c.send(resDone, r, e)
				}
			}
		default:
			err = c.done(-1, syscall.ENOSYS)
		}
		if err != nil {
			return
		}
	}
}

func (c *conn) ioctl(req uint32, argp uint64) error {
	d := c.dev
	d.mu.Lock()
	gone := c.gone
	if gone && req != ioReapURB && req != ioReapURBNDelay {
		d.stats.ENODEVReplies++
		d.mu.Unlock()
		return c.done(-1, syscall.ENODEV)
	}
	d.mu.Unlock()

	switch req {
	case ioGetCapabilities:
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], capabilities)
		if err := c.writeMem(argp, b[:]); err != nil {
			return err
		}
		return c.done(0, 0)
	case ioClaimInterface, ioReleaseIface, ioSetConfig:
		b, err := c.readMem(argp, 4)
		if err != nil {
			return err
		}
		v := int32(binary.LittleEndian.Uint32(b))
		d.mu.Lock()
		defer d.mu.Unlock()
		switch req {
		case ioClaimInterface:
			if v != 0 {
				return c.done(-1, syscall.ENOENT)
			}
			if d.busy {
				return c.done(-1, syscall.EBUSY)
			}
			d.stats.Claims++
		case ioReleaseIface:
			if v != 0 {
				return c.done(-1, syscall.EINVAL)
			}
			d.stats.Releases++
		case ioSetConfig:
			d.stats.SetConfig = append(d.stats.SetConfig, int(v))
			if v != 1 && v != 0 && v != -1 {
				return c.done(-1, syscall.EINVAL)
			}
		}
		return c.done(0, 0)
	case ioClearHalt:
		b, err := c.readMem(argp, 4)
		if err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(b) == EndpointIn {
			d.mu.Lock()
			d.halted = false
			d.stats.ClearHalts++
			d.mu.Unlock()
		}
		return c.done(0, 0)
	case ioSetInterface, ioReset:
		return c.done(0, 0)
	case ioSubmitURB:
		return c.submit(argp)
	case ioDiscardURB:
		d.mu.Lock()
		defer d.mu.Unlock()
		for i, u := range c.pending {
			if u.addr == argp {
				c.pending = append(c.pending[:i], c.pending[i+1:]...)
				u.status = -int32(syscall.ENOENT)
				u.data = nil
				c.completed = append(c.completed, u)
				d.stats.Discards++
				return c.done(0, 0)
			}
		}
		return c.done(-1, syscall.EINVAL)
	case ioReapURB, ioReapURBNDelay:
		return c.reap(argp)
	}
	return c.done(-1, syscall.ENOTTY)
}

func (c *conn) submit(argp uint64) error {
	raw, err := c.readMem(argp, urbSize)
	if err != nil {
		return err
	}
	u := &urb{addr: argp, typ: raw[0], ep: raw[1],
		buf: binary.LittleEndian.Uint64(raw[16:]), length: int(int32(binary.LittleEndian.Uint32(raw[24:])))}
	copy(u.raw[:], raw)
	if u.length < 0 || u.length > maxURB {
		return c.done(-1, syscall.EINVAL)
	}
	switch u.typ {
	case urbTypeControl:
		if u.length < 8 {
			return c.done(-1, syscall.EINVAL)
		}
		setup, err := c.readMem(u.buf, 8)
		if err != nil {
			return err
		}
		var out []byte
		wLength := int(binary.LittleEndian.Uint16(setup[6:]))
		if setup[0]&0x80 == 0 && wLength > 0 {
			if out, err = c.readMem(u.buf+8, min(wLength, u.length-8)); err != nil {
				return err
			}
		}
		c.dev.control(u, setup, out)
		c.dev.mu.Lock()
		c.completed = append(c.completed, u)
		c.dev.mu.Unlock()
	case urbTypeBulk:
		if u.ep != EndpointIn {
			return c.done(-1, syscall.ENOENT)
		}
		d := c.dev
		d.mu.Lock()
		d.stats.BulkURBs++
		if d.bulk(u) {
			c.completed = append(c.completed, u)
		} else {
			c.pending = append(c.pending, u)
		}
		d.mu.Unlock()
	default:
		return c.done(-1, syscall.EINVAL)
	}
	return c.done(0, 0)
}

func (c *conn) reap(argp uint64) error {
	d := c.dev
	d.mu.Lock()
	// URBs held back by HoldBulk complete once the hold is lifted.
	if !d.hold && d.enabled && len(c.pending) > 0 {
		var still []*urb
		for _, u := range c.pending {
			if d.bulk(u) {
				c.completed = append(c.completed, u)
			} else {
				still = append(still, u)
			}
		}
		c.pending = still
	}
	if len(c.completed) == 0 {
		gone := c.gone
		if gone {
			d.stats.ENODEVReplies++
		}
		d.mu.Unlock()
		if gone {
			return c.done(-1, syscall.ENODEV)
		}
		return c.done(-1, syscall.EAGAIN)
	}
	u := c.completed[0]
	c.completed = c.completed[1:]
	d.mu.Unlock()

	if err := c.writeMem(u.buf+uint64(u.off), u.data); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(u.raw[4:], uint32(u.status))
	binary.LittleEndian.PutUint32(u.raw[28:], uint32(len(u.data)))
	if err := c.writeMem(u.addr, u.raw[:]); err != nil {
		return err
	}
	var p [8]byte
	binary.LittleEndian.PutUint64(p[:], u.addr)
	if err := c.writeMem(argp, p[:]); err != nil {
		return err
	}
	return c.done(0, 0)
}

// bulk completes a bulk IN URB if the device has something to say; it is
// called with d.mu held and reports false when the URB stays pending.
func (d *Device) bulk(u *urb) bool {
	switch {
	case d.hold || !d.enabled:
		if d.hold && d.holdCh != nil {
			close(d.holdCh)
			d.holdCh = nil
		}
		return false
	case d.halted:
		u.status = -int32(syscall.EPIPE)
	case u.length%MaxPacketSize != 0:
		// The device sends whole 512-byte packets; a buffer that is not
		// a multiple overflows (hardware.md: "we MUST request
		// usbMaxPacketSize data").
		u.status = -int32(syscall.EOVERFLOW)
	default:
		n := u.length
		if d.shorts > 0 {
			d.shorts--
			n = min(n, d.shortLen)
		}
		u.data = make([]byte, n)
		io.ReadFull(d.stream, u.data)
		d.stats.BulkBytes += int64(n)
	}
	return true
}

// control answers a control URB: the standard requests libusb and the host
// use, and the Quantis vendor requests (hardware.md §1). Anything else
// stalls, as the firmware does.
func (d *Device) control(u *urb, setup, out []byte) {
	u.off = 8
	bmRequestType, bRequest := setup[0], setup[1]
	wValue := binary.LittleEndian.Uint16(setup[2:])
	wLength := int(binary.LittleEndian.Uint16(setup[6:]))
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.ControlURBs++
	var in []byte
	ok := true
	switch {
	case bmRequestType == 0x80 && bRequest == 0x06: // GET_DESCRIPTOR
		typ, idx := wValue>>8, wValue&0xFF
		switch {
		case typ == 1:
			in = deviceDescriptor(d.cfg.VendorID, d.cfg.ProductID)
		case typ == 2 && idx == 0:
			in = configDescriptor()
		case typ == 3 && idx == 0:
			in = langIDs
		case typ == 3 && idx == strManufacturer:
			in = stringDescriptor(Manufacturer)
		case typ == 3 && idx == strProduct:
			in = stringDescriptor(Product)
		case typ == 3 && idx == strSerial:
			in = stringDescriptor(d.cfg.Serial)
		default:
			ok = false
		}
	case bmRequestType == 0x80 && bRequest == 0x08: // GET_CONFIGURATION
		in = []byte{1}
	case bmRequestType == 0x80 && bRequest == 0x00: // GET_STATUS
		in = []byte{0, 0}
	case bmRequestType == 0x00 && bRequest == 0x09: // SET_CONFIGURATION
	case bmRequestType == 0x02 && bRequest == 0x01 && wValue == 0: // CLEAR_FEATURE(ENDPOINT_HALT)
		if binary.LittleEndian.Uint16(setup[4:]) == EndpointIn {
			d.halted = false
			d.stats.ClearHalts++
		}
	case bmRequestType == 0xC1 && bRequest >= 0x10 && bRequest <= 0x18:
		d.stats.Requests[bRequest]++
		switch bRequest {
		case 0x10: // GET_BOARD_VERSION
			in = binary.LittleEndian.AppendUint32(nil, d.cfg.BoardVersion)
		case 0x13: // GET_MODULES_STATUS
			in = []byte{0}
			if d.enabled && !d.modErr {
				in[0] = 1
			}
		case 0x14: // GET_MODULES_POWER
			in = []byte{0}
			if d.enabled {
				in[0] = 1
			}
		case 0x15: // GET_MODULES_MASK: one module
			in = []byte{1}
		case 0x16: // GET_MODULES_RATE, kbit/s
			in = binary.LittleEndian.AppendUint32(nil, d.cfg.RateKbit)
		case 0x17: // GET_AIS31_STARTUP_TESTS_REQUEST_FLAG
			in = []byte{0}
			if d.ais31 {
				in[0] = 1
			}
		default: // OUT requests sent as IN
			ok = false
		}
	case bmRequestType == 0x41 && (bRequest == 0x11 || bRequest == 0x12 || bRequest == 0x18):
		d.stats.Requests[bRequest]++
		switch bRequest {
		case 0x11: // MODULE_DISABLE
			d.enabled = false
		case 0x12: // MODULE_ENABLE
			d.enabled = true
			if !d.modStick {
				d.modErr = false
			}
		case 0x18: // CLEAR_AIS31_STARTUP_TESTS_REQUEST_FLAG
			d.ais31 = false
		}
	default:
		ok = false
	}
	_ = out
	if !ok {
		u.status = -int32(syscall.EPIPE)
		return
	}
	if len(in) > wLength {
		in = in[:wLength]
	}
	if len(in) > u.length-8 {
		in = in[:u.length-8]
	}
	u.data = in
}
