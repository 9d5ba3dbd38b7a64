package gateway_test

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/qrngd/qrngd/gateway"
)

var update = flag.Bool("update", false, "rewrite testdata goldens")

// goldenFamilies are the deterministic metric families compared with the
// golden exposition (the latency histogram depends on timing).
var goldenFamilies = []string{
	"qrng_source_up", "qrng_source_state", "qrng_source_samples_total", "qrng_source_bytes_total",
	"qrng_source_discarded_samples_total", "qrng_source_health_failures_total", "qrng_source_quarantines_total",
	"qrng_source_min_entropy_per_sample", "qrng_pool_level_bytes", "qrng_pool_capacity_bytes", "qrng_pool_ready",
	"qrng_pool_degraded", "qrng_pool_healthy_sources", "qrng_pool_min_healthy_sources", "qrng_pool_policy_info",
	"qrng_drbg_reseeds_total", "qrng_random_bytes_served_total", "qrng_http_requests_total",
}

// promtoolCheck lints an exposition with `promtool check metrics`. promtool
// comes from the Debian package prometheus (make deps); without it the check
// skips locally and fails under CI=true.
func promtoolCheck(t *testing.T, exposition []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found; CI must install the Debian package prometheus (make deps)")
		}
		t.Skip("promtool not found; install the Debian package prometheus (make deps) to lint metrics")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func gatherText(t *testing.T, reg *prometheus.Registry, names []string) []byte {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if slices.Contains(names, mf.GetName()) {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	return buf.Bytes()
}

func TestMetrics_Golden(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, &gateway.Options{Registry: reg})
	// Small answers only: they are flushed after the middleware counted them.
	h.get("/v1/random?bytes=16")
	h.get("/v1/random?bytes=100&mode=full&format=base64")
	h.get("/v1/random?bytes=0")
	h.get("/nope")
	h.do("POST", "/v1/sources", nil, nil)

	golden := filepath.Join("testdata", "metrics.prom")
	if *update {
		if err := os.WriteFile(golden, gatherText(t, reg, goldenFamilies), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestMetrics_Golden -update)", err)
	}
	if err := testutil.GatherAndCompare(reg, bytes.NewReader(want), goldenFamilies...); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`qrng_random_bytes_served_total{mode="full"} 100`, `qrng_random_bytes_served_total{mode="drbg"} 16`,
		`qrng_http_requests_total{code="404",method="GET",route="unmatched"} 1`, `qrng_source_state{source="usb1",state="quarantined"} 1`} {
		if !bytes.Contains(want, []byte(s)) {
			t.Errorf("golden lacks %s", s)
		}
	}

	// The whole scrape, histogram included, is a valid exposition.
	r := h.get("/metrics")
	if r.status != 200 || !strings.Contains(string(r.body), "qrng_http_request_duration_seconds_bucket") {
		t.Fatalf("GET /metrics = %d", r.status)
	}
	promtoolCheck(t, want)
	promtoolCheck(t, r.body)
}

func TestMetrics_OwnRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	ent := &fakeEntropy{status: readyStatus()}
	if _, err := gateway.New(&gateway.Options{Entropy: ent, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	// A second gateway on the same registry is a registration conflict, not a panic.
	if _, err := gateway.New(&gateway.Options{Entropy: ent, Registry: reg}); err == nil {
		t.Fatal("second gateway on one registry: no error")
	}
	// Nothing went to the global registry.
	n, err := testutil.GatherAndCount(prometheus.DefaultGatherer, "qrng_pool_ready", "qrng_http_requests_total")
	if err != nil || n != 0 {
		t.Fatalf("default registry holds %d qrng metrics (%v)", n, err)
	}
	// One failing state flips up and state together.
	st := readyStatus()
	st.Sources = st.Sources[1:]
	st.Sources[0].State = "disconnected"
	ent.setStatus(st)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP qrng_source_up 1 when the source is healthy and feeding the pool, else 0.
# TYPE qrng_source_up gauge
qrng_source_up{kind="sim",source="sim0"} 0
# HELP qrng_source_state 1 for the state the source is in (startup, healthy, quarantined, disabled, disconnected), 0 for the others.
# TYPE qrng_source_state gauge
qrng_source_state{source="sim0",state="disabled"} 0
qrng_source_state{source="sim0",state="disconnected"} 1
qrng_source_state{source="sim0",state="healthy"} 0
qrng_source_state{source="sim0",state="quarantined"} 0
qrng_source_state{source="sim0",state="startup"} 0
`), "qrng_source_up", "qrng_source_state"); err != nil {
		t.Fatal(err)
	}
}
