// Package file is the embedded checkpoint store: one bbolt file, e.g.
// "file:state.db". bbolt fsyncs every commit, so a Save is durable on return.
// The file is exclusive to one process; the pipeline lock lives beside it in
// flock'd files so that `reset` can test it without opening the store.
package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/understudy/understudy/checkpoint"
)

func init() {
	checkpoint.Register("file", func(_ context.Context, u *url.URL) (checkpoint.Store, error) {
		path, err := PathFromURL(u)
		if err != nil {
			return nil, err
		}
		return Open(path)
	})
	checkpoint.RegisterLocker("file", func(_ context.Context, u *url.URL) (checkpoint.Locker, error) {
		path, err := PathFromURL(u)
		if err != nil {
			return nil, err
		}
		return NewLocker(path), nil
	})
}

var (
	_ checkpoint.Store  = (*Store)(nil)
	_ checkpoint.Locker = (*Store)(nil)
)

// openTimeout bounds the wait for bbolt's file lock: a second process using the
// same file fails fast with an error naming it instead of hanging.
const openTimeout = time.Second

var bucket = []byte("checkpoints")

// PathFromURL returns the file path of "file:state.db" (relative to the working
// directory), "file:/abs/state.db" or "file:///abs/state.db".
func PathFromURL(u *url.URL) (string, error) {
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("file URL %q names host %q: use file:relative/path or file:///absolute/path", u.String(), u.Host)
	}
	path := u.Opaque
	if path == "" {
		path = u.Path
	}
	if path == "" {
		return "", fmt.Errorf("file URL %q has no path: use e.g. file:state.db", u.String())
	}
	return path, nil
}

// Store keeps checkpoints as JSON values in one bbolt bucket, keyed by pipeline.
type Store struct {
	path string
	db   *bolt.DB
	*Locker
}

// Open opens or creates the checkpoint file at path (creating its directory).
// It fails after a second when another process has the file open.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint file %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("checkpoint file %s is in use by another process (is another understudy running with this config?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("checkpoint file %s: %w", path, err)
	}
	return &Store{path: path, db: db, Locker: NewLocker(path)}, nil
}

// Path returns the file's path as given to Open.
func (s *Store) Path() string { return s.path }

// Load returns the pipeline's checkpoint, or checkpoint.ErrNotFound.
func (s *Store) Load(_ context.Context, pipeline string) (checkpoint.Checkpoint, error) {
	var cp checkpoint.Checkpoint
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(pipeline))
		if v == nil {
			return checkpoint.ErrNotFound
		}
		return json.Unmarshal(v, &cp) // copies out of the mmap, which dies with tx
	})
	if err != nil && !errors.Is(err, checkpoint.ErrNotFound) {
		return cp, fmt.Errorf("checkpoint file %s: load %q: %w", s.path, pipeline, err)
	}
	return cp, err
}

// Save stores cp durably, or returns checkpoint.ErrStale when the stored Seq is
// higher. The compare and the write are one bbolt transaction.
func (s *Store) Save(_ context.Context, cp checkpoint.Checkpoint) error {
	v, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if cur := b.Get([]byte(cp.Pipeline)); cur != nil {
			var stored struct {
				Seq uint64 `json:"seq"`
			}
			if err := json.Unmarshal(cur, &stored); err != nil {
				return fmt.Errorf("stored checkpoint of %q is corrupt: %w", cp.Pipeline, err)
			}
			if stored.Seq > cp.Seq {
				return checkpoint.ErrStale
			}
		}
		return b.Put([]byte(cp.Pipeline), v)
	})
	if err != nil && !errors.Is(err, checkpoint.ErrStale) {
		return fmt.Errorf("checkpoint file %s: save %q: %w", s.path, cp.Pipeline, err)
	}
	return err
}

// Delete removes the pipeline's checkpoint.
func (s *Store) Delete(_ context.Context, pipeline string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Delete([]byte(pipeline))
	})
	if err != nil {
		return fmt.Errorf("checkpoint file %s: delete %q: %w", s.path, pipeline, err)
	}
	return nil
}

// Close closes the file, releasing it for other processes. Leases taken through
// the Store stay held until released.
func (s *Store) Close() error { return s.db.Close() }
