package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/understudy/understudy/checkpoint"
)

// holderRe matches the owner strings Deployment.Lock writes: "sync (pid 42 on host-a)".
var holderRe = regexp.MustCompile(`\(pid (\d+) on (.+)\)$`)

// deadHolder reports whether a lock holder is a process of this host that no
// longer runs: a killed understudy whose lease has not expired yet.
func deadHolder(holder, host string) bool {
	m := holderRe.FindStringSubmatch(holder)
	if m == nil || m[2] != host {
		return false
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// lockAfterDeadHolder takes the lock like l.Lock, except that when the holder is
// a process of this host that is gone (kill -9, OOM, a crashed node's restart
// under systemd), it waits for that lease to expire instead of refusing: a lease
// store (Redis, DynamoDB) keeps a dead holder's lock for its ttl. A live holder,
// or one on another host, is refused at once, as before.
func lockAfterDeadHolder(ctx context.Context, l checkpoint.Locker, name, owner, host string, ttl time.Duration, log *slog.Logger) (checkpoint.Lease, error) {
	deadline := time.Now().Add(ttl + 5*time.Second)
	logged := false
	for {
		lease, err := l.Lock(ctx, name, owner, ttl)
		var locked *checkpoint.LockedError
		if err == nil || !errors.As(err, &locked) || !deadHolder(locked.Holder, host) || time.Now().After(deadline) {
			return lease, err
		}
		if !logged {
			log.Info("the pipeline lock belongs to a process of this host that is gone; waiting for its lease to expire",
				"pipeline", name, "holder", locked.Holder, "within", ttl.String())
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
