package gateway

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qrngd/qrngd/entropy"
)

const namespace = "qrng"

// Descriptors of the engine collector. Values come from Entropy.Status() at
// scrape time.
var (
	descSourceUp = prometheus.NewDesc(prometheus.BuildFQName(namespace, "source", "up"),
		"1 when the source is healthy and feeding the pool, else 0.", []string{"source", "kind"}, nil)
	descSourceState = prometheus.NewDesc(prometheus.BuildFQName(namespace, "source", "state"),
		"1 for the state the source is in (startup, healthy, quarantined, disabled, disconnected), 0 for the others.",
		[]string{"source", "state"}, nil)
	descSourceSamples = prometheus.NewDesc(prometheus.BuildFQName(namespace, "source", "samples_total"),
		"Raw samples read from the source.", []string{"source"}, nil)
	descSourceBytes = prometheus.NewDesc(prometheus.BuildFQName(namespace, "source", "bytes_total"),
		"Conditioned full-entropy bytes the source delivered to the pool.", []string{"source"}, nil)
	descSourceDiscarded = prometheus.NewDesc(prometheus.BuildFQName(namespace, "source", "discarded_samples_total"),
		"Samples discarded with a failing health-test window.", []string{"source"}, nil)
	descSourceFailures = prometheus.NewDesc(prometheus.BuildFQName(namespace, "source", "health_failures_total"),
		"Health-test alarms by test (rct, apt) and kind (intermittent, permanent).", []string{"source", "test", "kind"}, nil)
	descSourceQuarantines = prometheus.NewDesc(prometheus.BuildFQName(namespace, "source", "quarantines_total"),
		"Times the source was quarantined.", []string{"source"}, nil)
	descSourceMinEntropy = prometheus.NewDesc(prometheus.BuildFQName(namespace, "source", "min_entropy_per_sample"),
		"Min-entropy H credited per sample, in bits.", []string{"source"}, nil)
	descPoolLevel = prometheus.NewDesc(prometheus.BuildFQName(namespace, "pool", "level_bytes"),
		"Full-entropy bytes held by the pool.", nil, nil)
	descPoolCapacity = prometheus.NewDesc(prometheus.BuildFQName(namespace, "pool", "capacity_bytes"),
		"Capacity of the pool in bytes.", nil, nil)
	descPoolReady = prometheus.NewDesc(prometheus.BuildFQName(namespace, "pool", "ready"),
		"1 when the pool can serve under its policy, else 0.", nil, nil)
	descPoolDegraded = prometheus.NewDesc(prometheus.BuildFQName(namespace, "pool", "degraded"),
		"1 when the OS RNG is mixed in under policy os, else 0.", nil, nil)
	descPoolHealthy = prometheus.NewDesc(prometheus.BuildFQName(namespace, "pool", "healthy_sources"),
		"Sources currently healthy.", nil, nil)
	descPoolMinHealthy = prometheus.NewDesc(prometheus.BuildFQName(namespace, "pool", "min_healthy_sources"),
		"Healthy sources the policy requires.", nil, nil)
	descPoolPolicy = prometheus.NewDesc(prometheus.BuildFQName(namespace, "pool", "policy_info"),
		"The pool policy in force (always 1).", []string{"policy"}, nil)
	descReseeds = prometheus.NewDesc(prometheus.BuildFQName(namespace, "drbg", "reseeds_total"),
		"CTR_DRBG reseeds from the pool.", nil, nil)
)

var sourceStates = []entropy.State{
	entropy.StateStartup, entropy.StateHealthy, entropy.StateQuarantined, entropy.StateDisabled, entropy.StateDisconnected,
}

// engineCollector exports Entropy.Status() at scrape time.
type engineCollector struct{ ent Entropy }

func (ec engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSourceUp, descSourceState, descSourceSamples, descSourceBytes,
		descSourceDiscarded, descSourceFailures, descSourceQuarantines, descSourceMinEntropy, descPoolLevel,
		descPoolCapacity, descPoolReady, descPoolDegraded, descPoolHealthy, descPoolMinHealthy, descPoolPolicy, descReseeds} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (ec engineCollector) Collect(ch chan<- prometheus.Metric) {
	st := ec.ent.Status()
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	for _, s := range st.Sources {
		ch <- prometheus.MustNewConstMetric(descSourceUp, gauge, b2f(s.State == entropy.StateHealthy), s.Name, s.Kind)
		for _, state := range sourceStates {
			ch <- prometheus.MustNewConstMetric(descSourceState, gauge, b2f(s.State == state), s.Name, string(state))
		}
		ch <- prometheus.MustNewConstMetric(descSourceSamples, counter, float64(s.Samples), s.Name)
		ch <- prometheus.MustNewConstMetric(descSourceBytes, counter, float64(s.Bytes), s.Name)
		ch <- prometheus.MustNewConstMetric(descSourceDiscarded, counter, float64(s.DiscardedSamples), s.Name)
		for _, t := range []struct {
			test string
			c    entropy.TestCounters
		}{{"rct", s.RCT}, {"apt", s.APT}} {
			ch <- prometheus.MustNewConstMetric(descSourceFailures, counter, float64(t.c.Intermittent), s.Name, t.test, "intermittent")
			ch <- prometheus.MustNewConstMetric(descSourceFailures, counter, float64(t.c.Permanent), s.Name, t.test, "permanent")
		}
		ch <- prometheus.MustNewConstMetric(descSourceQuarantines, counter, float64(s.Quarantines), s.Name)
		ch <- prometheus.MustNewConstMetric(descSourceMinEntropy, gauge, s.MinEntropy, s.Name)
	}
	p := st.Pool
	ch <- prometheus.MustNewConstMetric(descPoolLevel, gauge, float64(p.LevelBytes))
	ch <- prometheus.MustNewConstMetric(descPoolCapacity, gauge, float64(p.CapacityBytes))
	ch <- prometheus.MustNewConstMetric(descPoolReady, gauge, b2f(p.Ready))
	ch <- prometheus.MustNewConstMetric(descPoolDegraded, gauge, b2f(p.Degraded))
	ch <- prometheus.MustNewConstMetric(descPoolHealthy, gauge, float64(p.HealthySources))
	ch <- prometheus.MustNewConstMetric(descPoolMinHealthy, gauge, float64(p.MinSources))
	if p.Policy != "" {
		ch <- prometheus.MustNewConstMetric(descPoolPolicy, gauge, 1, string(p.Policy))
	}
	ch <- prometheus.MustNewConstMetric(descReseeds, counter, float64(p.Reseeds))
}

// metrics are the gateway's own instruments.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	served   *prometheus.CounterVec
	handler  http.Handler
}

func newMetrics(reg *prometheus.Registry, ent Entropy) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency by route template and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "random", Name: "bytes_served_total",
			Help: "Random bytes served by GET /v1/random, by mode.",
		}, []string{"mode"}),
	}
	for _, mode := range []entropy.Mode{entropy.ModeDRBG, entropy.ModeFull, entropy.ModePR} {
		m.served.WithLabelValues(string(mode))
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.served, engineCollector{ent}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
	return m, nil
}
