package file

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/understudy/understudy/checkpoint"
)

var _ checkpoint.Locker = (*Locker)(nil)

// Locker locks a pipeline with flock on "<checkpoint file>.<pipeline>.lock". The
// kernel drops a flock when its process dies, so a killed sync never leaves a
// stale lock behind; the ttl is therefore ignored. Lock files are left in place:
// removing one could let two processes lock two different inodes of one name.
type Locker struct {
	path string // the checkpoint file the lock files sit beside
}

// NewLocker returns the Locker for the checkpoint file at path. It does not open
// the checkpoint file.
func NewLocker(path string) *Locker { return &Locker{path: path} }

// lockPath names the pipeline's lock file; the name is escaped so a pipeline can
// never point outside the directory.
func (l *Locker) lockPath(pipeline string) string {
	return l.path + "." + url.PathEscape(pipeline) + ".lock"
}

// Lock takes the pipeline's lock without waiting, or returns a
// *checkpoint.LockedError naming the owner the holder wrote into the lock file.
func (l *Locker) Lock(_ context.Context, pipeline, owner string, _ time.Duration) (checkpoint.Lease, error) {
	path := l.lockPath(pipeline)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pipeline lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder, _ := os.ReadFile(path)
			return nil, &checkpoint.LockedError{Pipeline: pipeline, Holder: strings.TrimSpace(string(holder))}
		}
		return nil, fmt.Errorf("pipeline lock %s: %w", path, err)
	}
	// The owner is written only while we hold the lock, so readers see the holder.
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(owner+"\n"), 0)
	}
	if err != nil {
		f.Close() // closing drops the flock
		return nil, fmt.Errorf("pipeline lock %s: %w", path, err)
	}
	return &lease{f: f}, nil
}

// Close does nothing: each lease holds its own file.
func (l *Locker) Close() error { return nil }

type lease struct {
	mu sync.Mutex
	f  *os.File // nil once released
}

// Refresh does nothing but confirm the lease is held: a flock lasts until
// Release or the process' death.
func (le *lease) Refresh(context.Context) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	if le.f == nil {
		return checkpoint.ErrLockLost
	}
	return nil
}

// Release drops the flock by closing the file.
func (le *lease) Release(context.Context) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	if le.f == nil {
		return nil
	}
	// Clear the owner so a reader racing the next Lock does not blame us.
	_ = le.f.Truncate(0)
	err := le.f.Close()
	le.f = nil
	return err
}
