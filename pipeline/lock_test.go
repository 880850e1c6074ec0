package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/understudy/understudy/checkpoint"
	"github.com/understudy/understudy/checkpoint/memory"
)

// A lease left by a process of this host that is gone is waited out; a live
// holder, or one on another host, is refused at once.
func TestLockWaitsOutOnlyADeadLocalHolder(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil { // started and reaped: its pid names no process
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	const ttl = 400 * time.Millisecond
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		holder string
		waits  bool
	}{
		{fmt.Sprintf("sync (pid %d on %s)", gone.Process.Pid, host), true},
		{fmt.Sprintf("sync (pid %d on %s)", os.Getpid(), host), false},
		{fmt.Sprintf("sync (pid %d on %s)", gone.Process.Pid, host+"-elsewhere"), false},
		{"someone", false},
	} {
		l := memory.NewLocker()
		if _, err := l.Lock(ctx, "p", tc.holder, ttl); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		lease, err := lockAfterDeadHolder(ctx, l, "p", "load (pid 1 on h)", host, ttl, log)
		took := time.Since(start)
		if tc.waits {
			if err != nil || took < ttl/2 {
				t.Errorf("holder %q: got %v after %s; want the lock once the dead holder's lease expired", tc.holder, err, took)
			}
		} else if !errors.Is(err, checkpoint.ErrLocked) || lease != nil || took > ttl/2 {
			t.Errorf("holder %q: got %v after %s; want ErrLocked at once", tc.holder, err, took)
		}
	}
}
