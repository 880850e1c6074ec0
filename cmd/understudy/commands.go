package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/understudy/understudy/checkpoint"
	"github.com/understudy/understudy/config"
	"github.com/understudy/understudy/pipeline"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

var (
	errHelp        = errors.New("help shown")
	errDifferences = errors.New("verify found differences")
)

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// configError is a config file that cannot be used: missing or invalid.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func isLocked(err error) bool { return errors.Is(err, checkpoint.ErrLocked) }

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, c *cli, args []string) error
}

// commands is filled in init: the command functions refer back to it for usage.
var commands []command

func init() {
	commands = []command{
		{"load", "[--pipeline NAME]", "initial bulk migration: snapshot, anonymize and write every selected table; records the position sync continues from", cmdLoad},
		{"sync", "[--pipeline NAME]", "the service: load when there is no checkpoint, then stream changes until SIGTERM; serves /metrics and /healthz", cmdSync},
		{"reset", "[--pipeline NAME] [--yes] [--dry-run] [--purge-mappings SCOPE]", "reset-and-resync runbook: drop source replication state, clear the target, delete checkpoints, reload", cmdReset},
		{"status", "[--pipeline NAME]", "positions, lag and load progress of each pipeline", cmdStatus},
		{"verify", "[--pipeline NAME]", "compare the target with transform(source), table by table", cmdVerify},
		{"mappings", "forget --domain D --value V | purge --scope S [--period P]", "erase one person's mapping, or purge a mapping scope", cmdMappings},
		{"version", "", "print the version", cmdVersion},
	}
}

// cli carries what every command shares.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, stdin, stdout, stderr)
		}
		usage(stdout)
		if len(args) == 0 {
			return usageError{"no command given"}
		}
		return errHelp
	}
	for _, cmd := range commands {
		if cmd.name == args[0] {
			return cmd.run(ctx, c, args[1:])
		}
	}
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "understudy keeps a test environment an anonymized, continuously synced replica of production.")
	fmt.Fprintln(w, "\nUsage: understudy COMMAND [--config FILE] [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'understudy COMMAND --help' for a command's flags. Exit codes: 0 ok, 1 failure or differences, 2 bad flags or config, 3 pipeline held by another process.")
}

// flags builds a command's flag set with the flags every config-reading command has.
type commonFlags struct {
	config, pipeline, logFormat string
	verbose                     bool
}

func newFlags(c *cli, name string, cf *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	for _, cmd := range commands {
		if cmd.name == name {
			fs.Usage = func() {
				fmt.Fprintf(c.stdout, "Usage: understudy %s [--config FILE] %s\n\n%s\n\nFlags:\n", name, cmd.args, cmd.summary)
				fs.SetOutput(c.stdout)
				fs.PrintDefaults()
				fs.SetOutput(c.stderr)
			}
		}
	}
	if cf != nil {
		fs.StringVar(&cf.config, "config", "understudy.yaml", "config file")
		fs.StringVar(&cf.pipeline, "pipeline", "", "run only the named pipeline (default: all)")
		fs.StringVar(&cf.logFormat, "log-format", "text", "log format: text or json")
		fs.BoolVar(&cf.verbose, "v", false, "verbose logging")
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

// setup reads the config, sets up logging and opens the deployment.
func (c *cli) setup(ctx context.Context, cf *commonFlags) (*pipeline.Deployment, []string, error) {
	level := slog.LevelInfo
	if cf.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cf.logFormat {
	case "json":
		c.log = slog.New(slog.NewJSONHandler(c.stderr, opts))
	case "text":
		c.log = slog.New(slog.NewTextHandler(c.stderr, opts))
	default:
		return nil, nil, usageError{fmt.Sprintf("--log-format %q: use text or json", cf.logFormat)}
	}
	cfg, err := config.Load(cf.config)
	if err != nil {
		return nil, nil, configError{err}
	}
	names, err := selectPipelines(cfg, cf.pipeline)
	if err != nil {
		return nil, nil, err
	}
	d, err := pipeline.Open(ctx, cfg, c.log)
	if err != nil {
		return nil, nil, err
	}
	return d, names, nil
}

func selectPipelines(cfg *config.Config, only string) ([]string, error) {
	var names []string
	for _, p := range cfg.Pipelines {
		if only == "" || p.Name == only {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		var all []string
		for _, p := range cfg.Pipelines {
			all = append(all, p.Name)
		}
		return nil, usageError{fmt.Sprintf("--pipeline %q is not in %s (pipelines: %s)", only, cfg.Path, strings.Join(all, ", "))}
	}
	return names, nil
}

// eachPipeline runs fn for every selected pipeline concurrently and joins errors,
// each prefixed with its pipeline's name.
func eachPipeline(names []string, fn func(name string) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(n); err != nil {
				errs[i] = fmt.Errorf("pipeline %s: %w", n, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func cmdLoad(ctx context.Context, c *cli, args []string) error {
	var cf commonFlags
	fs := newFlags(c, "load", &cf)
	workers := fs.Int("workers", 4, "parallel snapshot readers per pipeline")
	if err := parse(fs, args); err != nil {
		return err
	}
	d, names, err := c.setup(ctx, &cf)
	if err != nil {
		return err
	}
	defer d.Close()
	bars := newProgress(c.stderr)
	return eachPipeline(names, func(name string) error {
		lease, err := d.Lock(ctx, name, "load")
		if err != nil {
			return err
		}
		defer lease.Release(context.WithoutCancel(ctx))
		ctx, stop := pipeline.Hold(ctx, lease)
		defer stop()
		p, err := d.Pipeline(ctx, name)
		if err != nil {
			return err
		}
		defer p.Close()
		p.Options.Workers = *workers
		p.Progress = bars.update(name)
		err = p.Load(ctx)
		bars.done()
		if errors.Is(err, pipeline.ErrAlreadyLoaded) {
			fmt.Fprintf(c.stdout, "%s: %v\n", name, err)
			return nil
		}
		if err == nil {
			fmt.Fprintf(c.stdout, "%s: initial load complete; run `understudy sync` to keep the replica current\n", name)
		}
		return err
	})
}

func cmdSync(ctx context.Context, c *cli, args []string) error {
	var cf commonFlags
	fs := newFlags(c, "sync", &cf)
	metricsAddr := fs.String("metrics", "", "listen address for /metrics and /healthz (default: the config's metrics, 127.0.0.1:9187; 'off' disables)")
	if err := parse(fs, args); err != nil {
		return err
	}
	d, names, err := c.setup(ctx, &cf)
	if err != nil {
		return err
	}
	defer d.Close()
	addr := d.Config.Metrics
	if *metricsAddr != "" {
		addr = *metricsAddr
	}
	if addr != "off" {
		stop, err := serveMetrics(addr, d)
		if err != nil {
			return err
		}
		defer stop()
		c.log.Info("serving /metrics and /healthz", "addr", addr)
	}
	return eachPipeline(names, func(name string) error {
		lease, err := d.Lock(ctx, name, "sync")
		if err != nil {
			return err
		}
		defer lease.Release(context.WithoutCancel(ctx))
		return d.Run(ctx, name, lease)
	})
}

// serveMetrics serves /metrics and /healthz until stop is called.
func serveMetrics(addr string, d *pipeline.Deployment) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %s: %w (set metrics: in the config or --metrics, or 'off')", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.Metrics.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := d.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

func cmdVersion(_ context.Context, c *cli, args []string) error {
	fs := newFlags(c, "version", nil)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "understudy", version)
	return nil
}

// confirm asks on a terminal; without one it refuses, so a script never resets by
// accident.
func (c *cli) confirm(question string) (bool, error) {
	f, ok := c.stdin.(*os.File)
	if !ok || !isTerminal(f) {
		return false, usageError{"refusing to reset without confirmation: stdin is not a terminal; pass --yes"}
	}
	fmt.Fprintf(c.stderr, "%s [y/N] ", question)
	var answer string
	fmt.Fscanln(c.stdin, &answer)
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes", nil
}
