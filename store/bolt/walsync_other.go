//go:build !linux

package bolt

import (
	"errors"
	"log/slog"
	"os"
)

// walSyncer syncs the audit WAL with fdatasync (Linux has an AIO variant
// that does not hold a Go processor while the disk works).
type walSyncer struct{}

func newWALSyncer(*slog.Logger) *walSyncer  { return &walSyncer{} }
func (s *walSyncer) usesAIO() (bool, error) { return false, errors.New("Linux only") }
func (s *walSyncer) sync(f *os.File) error  { return fdatasync(f) }
func (s *walSyncer) close()                 {}
