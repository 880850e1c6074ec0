package sinks

import (
	"context"

	"github.com/understudy/understudy/internal/registry"
)

// Options configure one pipeline's sink.
type Options struct {
	URL      string
	Pipeline string
	// SourceURL lets the sink refuse a target that is the production source itself.
	SourceURL string
	// Publish asks for the change-event form of a sink (a pipeline's publish:),
	// which Kafka distinguishes from its topic-mirror target.
	Publish bool
}

// OpenFunc creates a Sink; it may connect but must not write anything before
// Prepare has checked the replica marker.
type OpenFunc func(ctx context.Context, opts Options) (Sink, error)

var targets = registry.New[OpenFunc]("target")

// Register makes a sink kind available under URL schemes (called from init()).
func Register(open OpenFunc, schemes ...string) {
	for _, s := range schemes {
		targets.Register(s, open)
	}
}

// New opens the Sink registered for opts.URL's scheme.
func New(ctx context.Context, opts Options) (Sink, error) {
	open, _, err := targets.Lookup(opts.URL)
	if err != nil {
		return nil, err
	}
	return open(ctx, opts)
}

// Schemes lists the registered target schemes, sorted.
func Schemes() []string { return targets.Schemes() }
