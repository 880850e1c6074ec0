package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/checkpoint"
	"github.com/understudy/understudy/config"
	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/sinks"
	"github.com/understudy/understudy/transform"
)

// Deployment is everything the pipelines of one config file share: the mapping
// store (one per deployment, so a value maps the same way in every pipeline and
// store), checkpoint stores, locks and metrics.
type Deployment struct {
	Config  *config.Config
	Metrics *Metrics
	Log     *slog.Logger
	// RunID names the namespace of scope: run mappings for this process.
	RunID string

	mapper      *mapping.Mapper // opened on first use: status and lock checks need no mappings
	mappings    mapping.Store
	mu          sync.Mutex
	checkpoints map[string]checkpoint.Store // by URL
	health      map[string]error            // by pipeline: last error of a running sync
}

// Open prepares the deployment. Stores are opened on first use, so `status` and a
// `reset` that finds the pipeline locked never contend for the mapping store.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Deployment, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	runID := cfg.RunID
	if runID == "" {
		runID = time.Now().UTC().Format("20060102T150405") + fmt.Sprintf("-%d", os.Getpid())
	}
	d := &Deployment{
		Config:      cfg,
		Metrics:     NewMetrics(),
		Log:         log,
		RunID:       runID,
		checkpoints: map[string]checkpoint.Store{},
		health:      map[string]error{},
	}
	d.Metrics.mapperStats(func() (uint64, uint64) {
		d.mu.Lock()
		m := d.mapper
		d.mu.Unlock()
		if m == nil {
			return 0, 0
		}
		return m.Stats()
	})
	return d, nil
}

// Mapper returns the deployment's mapper, opening the mapping store on first use.
// One mapper serves every pipeline, so a value maps the same way in all of them.
func (d *Deployment) Mapper(ctx context.Context) (*mapping.Mapper, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mapper != nil {
		return d.mapper, nil
	}
	store, err := mapping.Open(ctx, d.Config.Mappings)
	if err != nil {
		return nil, fmt.Errorf("mapping store %s: %w", config.Redacted(d.Config.Mappings), err)
	}
	d.mappings = store
	d.mapper = mapping.NewMapper(store, []byte(d.Config.Secret), mapping.MapperOptions{CacheSize: d.Config.MappingCache})
	return d.mapper, nil
}

// lazyResolver opens the mapping store when the first value needs it.
type lazyResolver struct{ d *Deployment }

func (l lazyResolver) Resolve(ctx context.Context, items []mapping.Item) error {
	m, err := l.d.Mapper(ctx)
	if err != nil {
		return err
	}
	return m.Resolve(ctx, items)
}

// Close releases the shared stores.
func (d *Deployment) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, s := range d.checkpoints {
		errs = append(errs, s.Close())
	}
	if d.mappings != nil {
		errs = append(errs, d.mappings.Close())
	}
	return errors.Join(errs...)
}

func (d *Deployment) spec(name string) (config.Pipeline, error) {
	for _, p := range d.Config.Pipelines {
		if p.Name == name {
			return p, nil
		}
	}
	return config.Pipeline{}, fmt.Errorf("no pipeline named %q in %s", name, d.Config.Path)
}

// checkpointStore returns the pipeline's configured checkpoint store, or nil when
// checkpoints live in the target's transactions.
func (d *Deployment) checkpointStore(ctx context.Context, spec config.Pipeline) (checkpoint.Store, error) {
	u := spec.Checkpoints
	if u == config.CheckpointsInTarget {
		return nil, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.checkpoints[u]; ok {
		return sharedStore{s}, nil
	}
	s, err := checkpoint.Open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("checkpoint store %s: %w", config.Redacted(u), err)
	}
	d.checkpoints[u] = s
	return sharedStore{s}, nil
}

// sharedStore keeps a pipeline's Close from closing a store other pipelines use;
// the Deployment closes it.
type sharedStore struct{ checkpoint.Store }

func (sharedStore) Close() error { return nil }

// Pipeline builds the named pipeline: its source, sink, transformer and checkpoint
// store. Nothing connects yet; Load and Sync do.
func (d *Deployment) Pipeline(ctx context.Context, name string) (*Pipeline, error) {
	spec, err := d.spec(name)
	if err != nil {
		return nil, err
	}
	tr, err := d.transformer(spec)
	if err != nil {
		return nil, err
	}
	filters := map[string]cdc.RowFilter{}
	for table, expr := range spec.Where {
		f, err := transform.ParseFilter(expr)
		if err != nil {
			return nil, fmt.Errorf("where %s: %w", table, err)
		}
		filters[table] = f
	}
	cps, err := d.checkpointStore(ctx, spec)
	if err != nil {
		return nil, err
	}
	var srcLog *slog.Logger
	if d.Log != nil {
		srcLog = d.Log.With("pipeline", spec.Name)
	}
	src, err := cdc.NewSource(ctx, cdc.SourceOptions{URL: spec.Source, Pipeline: spec.Name, Tables: spec.Tables, Filters: filters, Log: srcLog})
	if err != nil {
		return nil, err
	}
	d.Metrics.source(spec.Name, src)
	// publish: opens a change-event publisher; without a target it is the sink.
	var sink, pub sinks.Sink
	if spec.Publish != "" {
		pub, err = sinks.New(ctx, sinks.Options{URL: spec.Publish, Pipeline: spec.Name, SourceURL: spec.Source, Publish: true})
		if err != nil {
			src.Close()
			return nil, fmt.Errorf("publish: %w", err)
		}
	}
	if spec.Target == "" {
		sink, pub = pub, nil
	} else if sink, err = sinks.New(ctx, sinks.Options{URL: spec.Target, Pipeline: spec.Name, SourceURL: spec.Source}); err != nil {
		src.Close()
		if pub != nil {
			pub.Close()
		}
		return nil, err
	}
	if sink == nil {
		src.Close()
		return nil, fmt.Errorf("pipeline %s has neither target nor publish", spec.Name)
	}
	if cps == nil {
		if _, ok := sink.(sinks.TransactionalCheckpointer); !ok {
			src.Close()
			sink.Close()
			if pub != nil {
				pub.Close()
			}
			return nil, fmt.Errorf("checkpoints: target cannot hold checkpoints in its transactions; set checkpoints: to a file: or redis:// store")
		}
	}
	return &Pipeline{
		Name: spec.Name, Source: src, Sink: sink, Publisher: pub, Transform: tr, Checkpoints: cps,
		Metrics: d.Metrics, Log: d.Log, CursorKey: CursorKey([]byte(d.Config.Secret)),
	}, nil
}

func (d *Deployment) transformer(spec config.Pipeline) (*planner, error) {
	t, err := transform.New(transform.Config{
		Secret:       []byte(d.Config.Secret),
		Mapper:       lazyResolver{d},
		Rules:        spec.Rules,
		Where:        spec.Where,
		Unclassified: spec.Unclassified,
		RunID:        d.RunID,
	})
	if err != nil {
		return nil, err
	}
	return &planner{t: t}, nil
}

// Close closes a built pipeline's source, sink and checkpoint store.
func (p *Pipeline) Close() error {
	var errs []error
	if p.Source != nil {
		errs = append(errs, p.Source.Close())
	}
	if p.Sink != nil {
		errs = append(errs, p.Sink.Close())
	}
	if p.Publisher != nil {
		errs = append(errs, p.Publisher.Close())
	}
	if p.Checkpoints != nil && p.txcp == nil {
		errs = append(errs, p.Checkpoints.Close())
	}
	return errors.Join(errs...)
}

// lockOwnerTTL is how long a Redis lock outlives a crashed holder.
const lockOwnerTTL = 30 * time.Second

// Lock takes the pipeline's lock for owner ("sync", "load", "reset"). It fails with
// checkpoint.ErrLocked while another process holds it: reset refuses while a sync
// runs. Locks live beside the checkpoints (a lock file next to a file: store, a key
// in a redis:// store); with checkpoints in the target, beside the config file.
func (d *Deployment) Lock(ctx context.Context, name, owner string) (checkpoint.Lease, error) {
	spec, err := d.spec(name)
	if err != nil {
		return nil, err
	}
	u := spec.Checkpoints
	if u == config.CheckpointsInTarget {
		u = "file:" + filepath.Join(filepath.Dir(d.Config.Path), "understudy-state.db")
	}
	l, err := checkpoint.OpenLocker(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("pipeline lock at %s: %w", config.Redacted(u), err)
	}
	host, _ := os.Hostname()
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lease, err := lockAfterDeadHolder(ctx, l, name, fmt.Sprintf("%s (pid %d on %s)", owner, os.Getpid(), host), host, lockOwnerTTL, log)
	if err != nil {
		l.Close()
		return nil, err
	}
	return closingLease{lease, l}, nil
}

// closingLease closes its Locker when released.
type closingLease struct {
	checkpoint.Lease
	locker checkpoint.Locker
}

func (c closingLease) Release(ctx context.Context) error {
	return errors.Join(c.Lease.Release(ctx), c.locker.Close())
}

// Healthy reports the first failing pipeline of a running sync, for /healthz.
func (d *Deployment) Healthy() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, err := range d.health {
		if err != nil {
			return fmt.Errorf("pipeline %s: %v", name, err)
		}
	}
	return nil
}

func (d *Deployment) setHealth(name string, err error) {
	d.mu.Lock()
	d.health[name] = err
	d.mu.Unlock()
}
