package pciesim

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
	"time"
)

func u32(v uint32) []byte { b := make([]byte, 4); binary.NativeEndian.PutUint32(b, v); return b }

// TestFile_Ioctl_Families checks every request of the ABI on both driver
// families, directly on the simulator.
func TestFile_Ioctl_Families(t *testing.T) {
	type want struct {
		err error
		out uint32 // checked when err == nil and the request reads
	}
	for _, c := range []struct {
		model Model
		reqs  map[uintptr]want
	}{
		{PCIe16M, map[uintptr]want{
			ReqGetDriverVersion: {nil, DriverVersion}, ReqGetCardCount: {nil, 1}, ReqGetModulesMask: {nil, 0xF},
			ReqGetBoardVersion: {nil, 0x24}, ReqGetModulesStatus: {nil, 0xF}, ReqGetPCIBusDeviceID: {nil, 0x0300},
			ReqGetAIS31Flag: {nil, 1}, ReqGetSerial: {syscall.ENOTTY, 0}, ReqGetQRNGMode: {syscall.ENOTTY, 0},
			ReqGetCurrentQRNGMode: {syscall.ENOTTY, 0}, ReqSetQRNGMode: {syscall.ENOTTY, 0}, 0x80047107: {syscall.ENOTTY, 0},
		}},
		{PCIe240M, map[uintptr]want{
			ReqGetDriverVersion: {nil, DriverVersion}, ReqGetCardCount: {nil, 1}, ReqGetModulesMask: {nil, 0xFFF},
			ReqGetBoardVersion: {nil, 0x02010203}, ReqGetModulesStatus: {nil, 0xFFF}, ReqGetPCIBusDeviceID: {syscall.EINVAL, 0},
			ReqGetAIS31Flag: {syscall.EINVAL, 0}, ReqClearAIS31Flag: {syscall.EINVAL, 0}, ReqEnableModule: {syscall.EINVAL, 0},
			ReqDisableModule: {syscall.EINVAL, 0}, ReqGetQRNGMode: {nil, ModeRNG}, ReqGetCurrentQRNGMode: {nil, ModeRNG},
		}},
	} {
		t.Run(c.model.String(), func(t *testing.T) {
			h := NewHost(t.TempDir())
			if _, err := h.Plug(0, NewCard(CardOptions{Model: c.model, Serial: [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}})); err != nil {
				t.Fatal(err)
			}
			f, err := h.Open(h.Path(0))
			if err != nil {
				t.Fatal(err)
			}
			for req, w := range c.reqs {
				arg := make([]byte, 4)
				if req == ReqGetSerial {
					arg = make([]byte, SerialBufferSize)
				}
				err := f.Ioctl(req, arg)
				if !errors.Is(err, w.err) || (w.err == nil) != (err == nil) {
					t.Errorf("ioctl %#x = %v, want %v", req, err, w.err)
					continue
				}
				if err == nil && req>>30 == 2 && req != ReqGetSerial {
					if got := binary.NativeEndian.Uint32(arg); got != w.out {
						t.Errorf("ioctl %#x = %#x, want %#x", req, got, w.out)
					}
				}
			}
			if err := f.Ioctl(ReqGetModulesMask, nil); !errors.Is(err, syscall.EFAULT) {
				t.Errorf("ioctl without memory = %v, want EFAULT", err)
			}
			if c.model.Chip() {
				ser := make([]byte, SerialBufferSize)
				if err := f.Ioctl(ReqGetSerial, ser); err != nil || ser[0] != 1 || ser[10] != 11 || ser[11] != 0 {
					t.Errorf("GET_SERIAL = %v, %v; want 11 bytes then NUL", err, ser[:12])
				}
				if err := f.Ioctl(ReqSetQRNGMode, u32(ModeSample)); err != nil {
					t.Fatal(err)
				}
				if _, err := f.Read(make([]byte, 1)); err != nil {
					t.Fatal(err)
				}
				// Re-init in SAMPLE mode replaces the pending RNG-mode garbage.
				if g := f.c.Stats().GarbageDiscarded; g != GarbageSampleMode {
					t.Errorf("garbage after SAMPLE mode init = %d", g)
				}
				if err := f.Ioctl(ReqSetQRNGMode, u32(7)); !errors.Is(err, syscall.EINVAL) {
					t.Errorf("SET_QRNG_MODE 7 = %v, want EINVAL", err)
				}
			} else {
				for _, r := range []struct {
					req  uintptr
					arg  uint32
					want uint32
				}{{ReqDisableModule, 0x5, 0xA}, {ReqEnableModule, 0x1, 0xB}} {
					if err := f.Ioctl(r.req, u32(r.arg)); err != nil {
						t.Fatal(err)
					}
					if e := f.c.Stats().Enabled; e != r.want {
						t.Errorf("after %#x(%#x) enabled = %#x, want %#x", r.req, r.arg, e, r.want)
					}
				}
				if err := f.Ioctl(ReqClearAIS31Flag, u32(0)); err != nil || f.c.Stats().AIS31Flag {
					t.Errorf("CLEAR_AIS31 = %v, flag %v", err, f.c.Stats().AIS31Flag)
				}
				if _, err := f.Read(make([]byte, 4)); err != nil {
					t.Errorf("read with modules 0xb enabled and healthy = %v", err)
				}
				f.c.SetHealthy(0x7) // module 3 is enabled but fails
				if _, err := f.Read(make([]byte, 4)); !errors.Is(err, syscall.EIO) {
					t.Errorf("read with an enabled module failing = %v, want EIO", err)
				}
			}
			if err := f.Ioctl(ReqResetBoard, nil); err != nil || f.c.Stats().Resets != 1 {
				t.Errorf("RESET_BOARD = %v", err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.Ioctl(ReqGetModulesMask, make([]byte, 4)); !errors.Is(err, syscall.EBADF) {
				t.Errorf("ioctl after close = %v, want EBADF", err)
			}
		})
	}
}

func TestCard_Read_Pacing(t *testing.T) {
	clk := NewFakeClock()
	c := NewCard(CardOptions{Model: PCIe4M, Clock: clk, Rate: 500000})
	h := NewHost(t.TempDir())
	if _, err := h.Plug(0, c); err != nil {
		t.Fatal(err)
	}
	f, _ := h.Open(h.Path(0))
	start := clk.Now()
	for i := 0; i < 100; i++ { // 100 × 64 KiB at 500 kB/s ≈ 13 s of card time
		if _, err := f.Read(make([]byte, MaxReadPCIModule)); err != nil {
			t.Fatal(err)
		}
	}
	got := clk.Now().Sub(start)
	want := time.Duration(float64(100*MaxReadPCIModule) / 500000 * float64(time.Second))
	if got < want-time.Second || got > want {
		t.Errorf("100 reads took %v of card time, want about %v", got, want)
	}
}
