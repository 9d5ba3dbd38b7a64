package entropy

import "github.com/qrngd/qrngd/entropy/drbg"

// Test seams for the external tests in package entropy_test (which can use
// entropytest; package entropy cannot import it without a cycle).

type (
	Clock      = clock
	ClockTimer = clockTimer
)

// NewWithClock is New on a given clock.
func NewWithClock(opts *Options, c Clock) (*Engine, error) { return newEngine(opts, c) }

// SetHooks installs the event hook and the conditioner tap; call before Run.
func (e *Engine) SetHooks(hook func(source, kind string), tap func(source string, index uint64, w []byte)) {
	e.hook, e.tap = hook, tap
}

func (e *Engine) testRunner(name string) *runner {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.byName[name]
}

// ConditionedSamples reports the samples the source's conditioner absorbed.
func (e *Engine) ConditionedSamples(name string) uint64 {
	return e.testRunner(name).conditioned.Load()
}

// QueueFull reports whether the source's goroutine is blocked on its full queue.
func (e *Engine) QueueFull(name string) bool { return e.testRunner(name).queueFull.Load() }

// QueueLen reports the blocks in the source's queue.
func (e *Engine) QueueLen(name string) int {
	r := e.testRunner(name)
	e.mu.Lock() // Run makes the queues under e.mu
	defer e.mu.Unlock()
	return len(r.q)
}

// SourceReads reports the engine's Read calls on the source.
func (e *Engine) SourceReads(name string) uint64 { return e.testRunner(name).reads.Load() }

// SetShards keeps only the first n DRBG instances; call before any Read.
func (e *Engine) SetShards(n int) { e.shards = e.shards[:n] }

// DRBGs returns the instantiated DRBGs.
func (e *Engine) DRBGs() []*drbg.CTR {
	var ds []*drbg.CTR
	for _, s := range e.shards {
		s.mu.Lock()
		if s.d != nil {
			ds = append(ds, s.d)
		}
		s.mu.Unlock()
	}
	return ds
}

// PoolWaiters reports how many requests wait for pool blocks.
func (e *Engine) PoolWaiters() int { return int(e.pool.waiters.Load()) }

// PoissonCritical exposes poissonCritical.
var PoissonCritical = poissonCritical
