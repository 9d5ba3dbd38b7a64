package quantispcie

import (
	"encoding/binary"
	"unsafe"
)

// device is the seam between the driver and the kernel: one open
// /dev/qrandomN file. Read is read(2) and Ioctl is ioctl(2) whose pointer
// argument addresses arg (4 bytes, native-endian uint32, for the _IOR/_IOW
// requests; 256 bytes for GET_SERIAL; nil for RESET_BOARD). Errors are
// syscall.Errno values (possibly wrapped) so the driver can tell EINTR,
// EINVAL, ENOTTY, EIO and ENODEV apart. testhw/pciesim implements it.
type device interface {
	Read(p []byte) (int, error)
	Ioctl(req uintptr, arg []byte) error
	Close() error
}

// openDevice opens a node read-only; tests replace it with the simulator.
var openDevice = openUnixDevice

// Linux generic ioctl encoding (asm-generic/ioctl.h), as glibc's _IOR/_IOW.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, typ, nr, size uintptr) uintptr { return dir<<30 | size<<16 | typ<<8 | nr }

const magic = 'q'

var sizeofUint32 = unsafe.Sizeof(uint32(0))

// Requests of the shared Quantis ioctl ABI (quantis_ioctl.h / quantis_pci.h).
var (
	reqGetDriverVersion   = ioc(iocRead, magic, 0, sizeofUint32)
	reqGetCardCount       = ioc(iocRead, magic, 1, sizeofUint32)
	reqGetModulesMask     = ioc(iocRead, magic, 2, sizeofUint32)
	reqGetBoardVersion    = ioc(iocRead, magic, 3, sizeofUint32)
	reqResetBoard         = ioc(iocNone, magic, 4, 0)
	reqEnableModule       = ioc(iocWrite, magic, 5, sizeofUint32)
	reqDisableModule      = ioc(iocWrite, magic, 6, sizeofUint32)
	reqGetModulesStatus   = ioc(iocRead, magic, 8, sizeofUint32)
	reqGetAIS31Flag       = ioc(iocRead, magic, 10, sizeofUint32)
	reqClearAIS31Flag     = ioc(iocWrite, magic, 11, sizeofUint32)
	reqGetSerial          = ioc(iocRead, magic, 12, serialBufferSize)
	reqGetCurrentQRNGMode = ioc(iocRead, magic, 15, sizeofUint32)
)

const serialBufferSize = 256 // QUANTIS_IOCTL_GET_SERIAL_MAX_LENGTH

func getU32(d device, req uintptr) (uint32, error) {
	var b [4]byte
	if err := d.Ioctl(req, b[:]); err != nil {
		return 0, err
	}
	return binary.NativeEndian.Uint32(b[:]), nil
}

func putU32(d device, req uintptr, v uint32) error {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return d.Ioctl(req, b[:])
}
