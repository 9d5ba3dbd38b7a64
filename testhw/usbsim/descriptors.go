package usbsim

import (
	"encoding/binary"
	"unicode/utf16"
)

// Descriptor values of the Quantis USB-4M as documented in
// shared/reference/hardware.md §1: vendor-class device with one
// configuration (value 1, 300 mA), one vendor-class interface (#0) and one
// bulk IN endpoint 0x86 with wMaxPacketSize 512; strings "id Quantique",
// "Quantis USB" and the serial number.
const (
	VendorID  = 0x0ABA
	ProductID = 0x0102

	EndpointIn    = 0x86
	MaxPacketSize = 512

	strManufacturer = 1
	strProduct      = 2
	strSerial       = 3

	Manufacturer = "id Quantique"
	Product      = "Quantis USB"
)

func deviceDescriptor(vid, pid uint16) []byte {
	d := []byte{
		18, 0x01, // bLength, DEVICE
		0x00, 0x02, // bcdUSB 2.00
		0xFF, 0x00, 0x00, // vendor class
		64,         // bMaxPacketSize0
		0, 0, 0, 0, // idVendor, idProduct (below)
		0x00, 0x01, // bcdDevice 1.00
		strManufacturer, strProduct, strSerial,
		1, // bNumConfigurations
	}
	binary.LittleEndian.PutUint16(d[8:], vid)
	binary.LittleEndian.PutUint16(d[10:], pid)
	return d
}

func configDescriptor() []byte {
	cfg := []byte{
		9, 0x02, 0, 0, // bLength, CONFIGURATION, wTotalLength (below)
		1,    // bNumInterfaces
		1,    // bConfigurationValue
		0,    // iConfiguration
		0x80, // bmAttributes: bus powered
		150,  // bMaxPower: 300 mA
		// interface 0
		9, 0x04, 0, 0, 1, 0xFF, 0x00, 0x00, 0,
		// endpoint 0x86 bulk IN, 512 bytes
		7, 0x05, EndpointIn, 0x02, byte(MaxPacketSize & 0xFF), byte(MaxPacketSize >> 8), 0,
	}
	binary.LittleEndian.PutUint16(cfg[2:], uint16(len(cfg)))
	return cfg
}

// rootHubDescriptors is a USB 2.0 root hub (1d6b:0002) with its status
// interrupt endpoint, as the kernel presents it.
func rootHubDescriptors() []byte {
	dev := []byte{18, 0x01, 0x00, 0x02, 0x09, 0x00, 0x01, 64,
		0x6b, 0x1d, 0x02, 0x00, 0x01, 0x06, 3, 2, 1, 1}
	cfg := []byte{9, 0x02, 25, 0, 1, 1, 0, 0xE0, 0,
		9, 0x04, 0, 0, 1, 0x09, 0x00, 0x00, 0,
		7, 0x05, 0x81, 0x03, 4, 0, 12}
	return append(dev, cfg...)
}

func stringDescriptor(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2+2*len(u))
	b[0] = byte(len(b))
	b[1] = 0x03
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2+2*i:], c)
	}
	return b
}

// langIDs is string descriptor 0: US English only.
var langIDs = []byte{4, 0x03, 0x09, 0x04}
