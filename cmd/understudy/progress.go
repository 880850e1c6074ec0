package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/understudy/understudy/pipeline"
	"golang.org/x/term"
)

// progress shows the initial load: a bar per table, redrawn in place on a terminal;
// plain lines (at most one per table every few seconds) otherwise, so logs stay
// readable in CI and under systemd.
type progress struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	rows  map[string]pipeline.Progress
	lines int
	last  map[string]time.Time
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, tty: ok && isTerminal(f), rows: map[string]pipeline.Progress{}, last: map[string]time.Time{}}
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// update returns the Progress callback of one pipeline.
func (p *progress) update(pipelineName string) func(pipeline.Progress) {
	return func(pr pipeline.Progress) {
		p.mu.Lock()
		defer p.mu.Unlock()
		key := pipelineName + " " + pr.Table
		p.rows[key] = pr
		if p.tty {
			p.redraw()
			return
		}
		if pr.ChunksDone == pr.ChunksTotal || time.Since(p.last[key]) > 5*time.Second {
			p.last[key] = time.Now()
			fmt.Fprintf(p.w, "load %s: %d/%d chunks, %d rows\n", key, pr.ChunksDone, pr.ChunksTotal, pr.TableRows)
		}
	}
}

func (p *progress) redraw() {
	if p.lines > 0 {
		fmt.Fprintf(p.w, "\x1b[%dA", p.lines)
	}
	keys := make([]string, 0, len(p.rows))
	for k := range p.rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		pr := p.rows[k]
		frac := 1.0
		if pr.ChunksTotal > 0 {
			frac = float64(pr.ChunksDone) / float64(pr.ChunksTotal)
		}
		n := int(frac * 30)
		fmt.Fprintf(p.w, "\x1b[2K%-40s [%s%s] %3.0f%% %d rows\n", k, strings.Repeat("#", n), strings.Repeat(".", 30-n), frac*100, pr.TableRows)
	}
	p.lines = len(keys)
}

func (p *progress) done() {}
