package entropy

import "time"

// Mode selects how a request is served.
type Mode string

const (
	ModeDRBG Mode = "drbg" // CTR_DRBG output, seeded and reseeded from the pool
	ModeFull Mode = "full" // full-entropy bytes straight from the pool
	ModePR   Mode = "pr"   // CTR_DRBG with prediction resistance (reseed before generate)
)

// Policy decides what happens when too few healthy sources remain.
type Policy string

const (
	PolicyFailClosed Policy = "fail-closed" // refuse to serve
	PolicyOS         Policy = "os"          // mix in the OS RNG, flagged degraded
)

// State of one source.
type State string

const (
	StateStartup      State = "startup"
	StateHealthy      State = "healthy"
	StateQuarantined  State = "quarantined"
	StateDisabled     State = "disabled"
	StateDisconnected State = "disconnected"
)

// Provenance says where the bytes of one request came from.
type Provenance struct {
	Mode     Mode     `json:"mode"`
	Sources  []string `json:"sources"`  // sources that contributed to the pool blocks used
	Degraded bool     `json:"degraded"` // the OS RNG was mixed in under policy "os"
}

// TestCounters counts alarms of one health test.
type TestCounters struct {
	Intermittent uint64 `json:"intermittent"`
	Permanent    uint64 `json:"permanent"`
}

// SourceStatus is a snapshot of one source for status endpoints and metrics.
type SourceStatus struct {
	SourceInfo
	State            State        `json:"state"`
	Samples          uint64       `json:"samples"`           // samples read
	Bytes            uint64       `json:"bytes"`             // conditioned bytes delivered to the pool
	DiscardedSamples uint64       `json:"discarded_samples"` // samples of failing windows
	RCT              TestCounters `json:"rct"`
	APT              TestCounters `json:"apt"`
	RCTCutoff        int          `json:"rct_cutoff"`
	APTCutoff        int          `json:"apt_cutoff"`
	APTWindow        int          `json:"apt_window"`
	AlphaLog2        int          `json:"alpha_log2"`                            // alpha = 2^-AlphaLog2
	FalseAlarmEvery  float64      `json:"expected_false_alarm_interval_seconds"` // at NominalRate; 0 if unknown
	Quarantines      uint64       `json:"quarantines"`
	LastError        string       `json:"last_error,omitempty"`
	Since            time.Time    `json:"since"` // when State was entered
}

// PoolStatus is a snapshot of the pool and DRBG.
type PoolStatus struct {
	Policy         Policy `json:"policy"`
	Degraded       bool   `json:"degraded"`
	Ready          bool   `json:"ready"`       // can serve under its policy
	LevelBytes     int    `json:"level_bytes"` // full-entropy bytes held
	CapacityBytes  int    `json:"capacity_bytes"`
	HealthySources int    `json:"healthy_sources"`
	MinSources     int    `json:"min_healthy_sources"`
	Reseeds        uint64 `json:"drbg_reseeds"`
}

// Status is a snapshot of the whole engine.
type Status struct {
	Pool    PoolStatus     `json:"pool"`
	Sources []SourceStatus `json:"sources"`
}
