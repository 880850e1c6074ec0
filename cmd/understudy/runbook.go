package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/pipeline"
)

func cmdReset(ctx context.Context, c *cli, args []string) error {
	var cf commonFlags
	fs := newFlags(c, "reset", &cf)
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	dryRun := fs.Bool("dry-run", false, "print the plan and change nothing")
	purge := fs.String("purge-mappings", "", "also purge the mappings of a scope: daily, run or permanent")
	noReload := fs.Bool("no-reload", false, "stop after clearing; the next sync reloads")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *purge != "" && *purge != string(mapping.Permanent) && *purge != string(mapping.Daily) && *purge != string(mapping.Run) {
		return usageError{fmt.Sprintf("--purge-mappings %q: use daily, run or permanent", *purge)}
	}
	d, names, err := c.setup(ctx, &cf)
	if err != nil {
		return err
	}
	defer d.Close()
	opts := pipeline.ResetOptions{PurgeScope: mapping.Scope(*purge), Reload: !*noReload}

	for _, name := range names {
		fmt.Fprintf(c.stdout, "Reset plan for pipeline %s:\n", name)
		for i, step := range d.ResetPlan(name, opts) {
			fmt.Fprintf(c.stdout, "  %d. %s\n", i+1, step)
		}
	}
	if *dryRun {
		fmt.Fprintln(c.stdout, "Dry run: nothing changed.")
		return nil
	}
	if !*yes {
		ok, err := c.confirm("Run this plan?")
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("reset cancelled")
		}
	}
	return eachPipeline(names, func(name string) error {
		lease, err := d.Lock(ctx, name, "reset")
		if err != nil {
			return err
		}
		defer lease.Release(context.WithoutCancel(ctx))
		ctx, stop := pipeline.Hold(ctx, lease)
		defer stop()
		if err := d.Reset(ctx, name, opts); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s: reset done; run `understudy sync` to stream\n", name)
		return nil
	})
}

func cmdStatus(ctx context.Context, c *cli, args []string) error {
	var cf commonFlags
	fs := newFlags(c, "status", &cf)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	d, names, err := c.setup(ctx, &cf)
	if err != nil {
		return err
	}
	defer d.Close()
	var all []pipeline.Status
	for _, name := range names {
		st, err := d.Status(ctx, name)
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", name, err)
		}
		all = append(all, st)
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tSTATE\tPOSITION\tLAG\tSAVED\tDETAIL")
	for _, st := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Pipeline, st.State, dash(st.Position), dash(st.Lag), dash(st.SavedAt), dash(st.Detail))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdVerify(ctx context.Context, c *cli, args []string) error {
	var cf commonFlags
	fs := newFlags(c, "verify", &cf)
	if err := parse(fs, args); err != nil {
		return err
	}
	d, names, err := c.setup(ctx, &cf)
	if err != nil {
		return err
	}
	defer d.Close()
	differ := false
	for _, name := range names {
		rep, err := d.Verify(ctx, name)
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", name, err)
		}
		if len(rep.Skipped) > 0 {
			fmt.Fprintf(c.stdout, "%s: not compared (scope: run without run_id in the config): %s\n", name, strings.Join(rep.Skipped, ", "))
		}
		for _, t := range rep.Tables {
			state := "ok"
			if !t.Match() {
				state, differ = "DIFFERENT", true
			}
			fmt.Fprintf(c.stdout, "%s %s: %s (source %d rows after filters, target %d rows", name, t.Table, state, t.SourceRows, t.TargetRows)
			if len(t.DifferingBuckets) > 0 {
				fmt.Fprintf(c.stdout, ", %d of %d key buckets differ", len(t.DifferingBuckets), pipeline.VerifyBuckets)
			}
			fmt.Fprintln(c.stdout, ")")
		}
	}
	if differ {
		return errDifferences
	}
	return nil
}

func cmdMappings(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || (args[0] != "forget" && args[0] != "purge") {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			fmt.Fprintln(c.stdout, "Usage: understudy mappings forget --domain D --value V [--config FILE]\n       understudy mappings purge --scope daily|run|permanent [--period P] [--config FILE]")
			return errHelp
		}
		return usageError{"mappings: use `mappings forget --domain D --value V` or `mappings purge --scope S`"}
	}
	var cf commonFlags
	fs := newFlags(c, "mappings", &cf)
	domain := fs.String("domain", "", "forget: the mapping domain (as in the rules)")
	value := fs.String("value", "", "forget: the production value whose mapping is erased; '-' reads it from stdin, which keeps it out of shell history and ps")
	scope := fs.String("scope", "", "purge: daily, run or permanent")
	period := fs.String("period", "", "purge: only this namespace (a UTC day 2006-01-02, or a run id)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "forget":
		if *domain == "" || *value == "" {
			return usageError{"mappings forget needs --domain and --value (--value - reads it from stdin)"}
		}
		if *value == "-" {
			line, err := bufio.NewReader(c.stdin).ReadString('\n')
			if err != nil && line == "" {
				return usageError{"mappings forget --value -: no value on stdin"}
			}
			*value = strings.TrimRight(line, "\r\n")
		}
	case "purge":
		if *scope != string(mapping.Daily) && *scope != string(mapping.Run) && *scope != string(mapping.Permanent) {
			return usageError{"mappings purge needs --scope daily, run or permanent"}
		}
	}
	d, _, err := c.setup(ctx, &cf)
	if err != nil {
		return err
	}
	defer d.Close()
	m, err := d.Mapper(ctx)
	if err != nil {
		return err
	}
	if args[0] == "forget" {
		n, err := m.Forget(ctx, *domain, *value)
		if err != nil {
			return err
		}
		// The value itself is never echoed: it is production data.
		fmt.Fprintf(c.stdout, "forgot %d mapping(s) in domain %s\n", n, *domain)
		return nil
	}
	if err := m.Purge(ctx, mapping.Scope(*scope), *period); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "purged %s mappings%s\n", *scope, map[bool]string{true: " of " + *period, false: ""}[*period != ""])
	return nil
}
