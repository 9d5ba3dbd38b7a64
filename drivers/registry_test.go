package drivers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/qrngd/qrngd/entropy"
)

// isolate gives the test an empty, unfrozen registry and restores the
// process-wide one afterwards.
func isolate(t *testing.T) {
	t.Helper()
	mu.Lock()
	saved, savedFrozen := registry, frozen
	registry, frozen = map[string]Driver{}, false
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		registry, frozen = saved, savedFrozen
		mu.Unlock()
	})
}

type fakeDriver struct {
	kind    string
	devs    []Device
	err     error
	opened  []Spec
	nilOpen bool
}

func (d *fakeDriver) Kind() string { return d.kind }
func (d *fakeDriver) Discover(context.Context) ([]Device, error) {
	return d.devs, d.err
}
func (d *fakeDriver) Open(_ context.Context, spec Spec) (entropy.Source, error) {
	d.opened = append(d.opened, spec)
	if d.nilOpen {
		return nil, nil
	}
	if d.err != nil {
		return nil, d.err
	}
	return fakeSource{}, nil
}

type fakeSource struct{}

func (fakeSource) Info() entropy.SourceInfo                  { return entropy.SourceInfo{} }
func (fakeSource) Read(context.Context, []byte) (int, error) { return 0, nil }
func (fakeSource) Close() error                              { return nil }

func TestRegister(t *testing.T) {
	isolate(t)
	if err := Register(&fakeDriver{kind: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := Register(&fakeDriver{kind: "a"}); err != nil {
		t.Fatal(err)
	}
	if got := Kinds(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Kinds() = %v; want [a b]", got)
	}
	if d, ok := Lookup("a"); !ok || d.Kind() != "a" {
		t.Errorf("Lookup(a) = %v, %v", d, ok)
	}
	if _, ok := Lookup("c"); ok {
		t.Error("Lookup(c) found a driver")
	}
}

func TestRegister_Invalid(t *testing.T) {
	isolate(t)
	if err := Register(&fakeDriver{kind: "x"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		d    Driver
		want string
	}{
		{"duplicate", &fakeDriver{kind: "x"}, `kind "x" registered twice`},
		{"nil", nil, "nil driver"},
		{"empty kind", &fakeDriver{}, "empty kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Register(tt.d); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Register = %v; want an error containing %q", err, tt.want)
			}
		})
	}
	if got := Kinds(); !slices.Equal(got, []string{"x"}) {
		t.Errorf("failed registrations changed the registry: %v", got)
	}
}

func TestRegister_Frozen(t *testing.T) {
	isolate(t)
	Freeze()
	err := Register(&fakeDriver{kind: "late"})
	if err == nil || !strings.Contains(err.Error(), "frozen") || !strings.Contains(err.Error(), "late") {
		t.Fatalf("Register after Freeze = %v; want an error naming the kind and the freeze", err)
	}
	if _, ok := Lookup("late"); ok {
		t.Error("kind registered after Freeze")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustRegister after Freeze did not panic")
		}
	}()
	MustRegister(&fakeDriver{kind: "late2"})
}

func TestOpen(t *testing.T) {
	isolate(t)
	d := &fakeDriver{kind: "k"}
	MustRegister(d)
	MustRegister(&fakeDriver{kind: "j"})
	spec := Spec{Name: "s1", Kind: "k", MinEntropy: 3, Params: Params{"x": 1}}
	src, err := Open(context.Background(), spec)
	if err != nil || src == nil {
		t.Fatalf("Open = %v, %v", src, err)
	}
	if len(d.opened) != 1 || d.opened[0].Name != "s1" || d.opened[0].MinEntropy != 3 {
		t.Errorf("driver got %+v", d.opened)
	}
}

func TestOpen_UnknownKind(t *testing.T) {
	isolate(t)
	MustRegister(&fakeDriver{kind: "quantis-usb"})
	MustRegister(&fakeDriver{kind: "sim"})
	_, err := Open(context.Background(), Spec{Name: "s", Kind: "quantum"})
	if !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("Open(unknown) = %v; want ErrUnknownKind", err)
	}
	for _, want := range []string{`"quantum"`, "quantis-usb", "sim"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestOpen_DriverErrors(t *testing.T) {
	isolate(t)
	boom := errors.New("boom")
	MustRegister(&fakeDriver{kind: "bad", err: boom})
	MustRegister(&fakeDriver{kind: "nil", nilOpen: true})
	if _, err := Open(context.Background(), Spec{Name: "s", Kind: "bad"}); !errors.Is(err, boom) {
		t.Errorf("Open = %v; want the driver's error", err)
	}
	if src, err := Open(context.Background(), Spec{Name: "s", Kind: "nil"}); err == nil || src != nil {
		t.Errorf("Open of a driver returning nil, nil = %v, %v; want an error", src, err)
	}
}

func TestDiscover(t *testing.T) {
	isolate(t)
	e1, e2 := errors.New("usb bus gone"), errors.New("no /dev/qrandom")
	MustRegister(&fakeDriver{kind: "a", devs: []Device{{Kind: "a", Serial: "1"}}})
	MustRegister(&fakeDriver{kind: "b", err: e1, devs: []Device{{Kind: "b", Serial: "partial"}}})
	MustRegister(&fakeDriver{kind: "c", err: e2})
	MustRegister(&fakeDriver{kind: "d", devs: []Device{{Kind: "d", Serial: "2"}, {Kind: "d", Serial: "3"}}})
	devs, err := Discover(context.Background())
	var serials []string
	for _, d := range devs {
		serials = append(serials, d.Serial)
	}
	if !slices.Equal(serials, []string{"1", "partial", "2", "3"}) {
		t.Errorf("devices %v; want every driver's devices despite failures", serials)
	}
	if !errors.Is(err, e1) || !errors.Is(err, e2) {
		t.Fatalf("Discover error %v; want both driver errors joined", err)
	}
	if !strings.Contains(err.Error(), "discover b") || !strings.Contains(err.Error(), "discover c") {
		t.Errorf("error %q does not name the failing kinds", err)
	}
	isolate(t)
	MustRegister(&fakeDriver{kind: "ok"})
	if devs, err := Discover(context.Background()); devs != nil || err != nil {
		t.Errorf("Discover with no devices = %v, %v; want nil, nil", devs, err)
	}
}
