// Command understudy-demo is `make demo`: it starts a local "production" and "test"
// Postgres, seeds production with the odd data real production has (NULL and empty
// names, a retired enum value, unicode, PII inside JSON, large text), runs
// `understudy load`, then `understudy sync` while production keeps changing, and
// shows production rows beside their anonymized replicas.
package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/understudy/understudy/testenv"
)

const schema = `
CREATE TYPE account_status AS ENUM ('open', 'frozen', 'closed', 'legacy_gold');
CREATE TABLE customers (
  id bigint PRIMARY KEY,
  tenant_id int NOT NULL,
  first_name text,
  last_name text,
  email text UNIQUE,
  phone text,
  ssn text,
  birth_date date,
  profile jsonb,
  notes text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE accounts (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  holder_name text,
  iban text NOT NULL,
  status account_status NOT NULL,
  balance numeric(14,2) NOT NULL,
  tags text[]
);
`

const config = `# written by understudy-demo
secret: ${UNDERSTUDY_SECRET}
metrics: 127.0.0.1:0
pipelines:
  - name: bank
    source: %s
    target: %s
    tables: [public.customers, public.accounts]
    rules:
      public.customers:
        first_name: {replace: first_name, domain: given_name}
        last_name:  {replace: last_name, domain: surname}
        email:      {replace: email, domain: email}
        phone:      {replace: phone}
        ssn:        {constant: "000-00-0000"}
        birth_date: {replace: date_shift, entity: id, max_days: 200}
        notes:      hash
        profile:
          json:
            $.email: {replace: email, domain: email}
            $.emergency_contact.name: {replace: full_name}
      public.accounts:
        holder_name: {replace: last_name, domain: surname}
        iban: hash
    where:
      public.customers: tenant_id in [1, 2]
`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin, err := filepath.Abs("bin/understudy")
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s not built: run `make demo` (it builds first)", bin)
	}
	work, err := os.MkdirTemp("", "understudy-demo-")
	if err != nil {
		return err
	}

	say("starting a local production Postgres and a local test Postgres (hermetic, loopback only)")
	prodPG, err := testenv.StartPostgres("")
	if err != nil {
		return err
	}
	defer prodPG.Stop()
	testPG, err := testenv.StartPostgres("")
	if err != nil {
		return err
	}
	defer testPG.Stop()
	prod, test := prodPG.DSN("postgres"), testPG.DSN("postgres")
	fmt.Printf("    production: 127.0.0.1:%d   test: 127.0.0.1:%d   state: %s\n", prodPG.Port, testPG.Port, work)

	say("seeding production with 20,000 customers and 30,000 accounts, odd cases included")
	if err := seed(ctx, prod); err != nil {
		return err
	}

	cfgPath := filepath.Join(work, "understudy.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(config, prod, test)), 0o600); err != nil {
		return err
	}
	env := append(os.Environ(), "UNDERSTUDY_SECRET=demo-secret-not-for-production-0123456789")
	understudy := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, append(args, "--config", cfgPath)...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, os.Stdout, os.Stderr
		return cmd
	}
	fmt.Printf("    config: %s\n", cfgPath)

	say("understudy load — initial bulk migration")
	start := time.Now()
	if err := understudy(ctx, "load").Run(); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	fmt.Printf("    loaded in %s\n", time.Since(start).Round(time.Millisecond))

	say("understudy sync — streaming while production keeps changing")
	syncCmd := understudy(context.Background(), "sync", "--metrics", "off")
	syncCmd.Stderr = nil // keep the demo's output readable; logs go to the void
	if err := syncCmd.Start(); err != nil {
		return err
	}
	defer func() {
		syncCmd.Process.Signal(syscall.SIGTERM)
		syncCmd.Wait()
	}()
	lastID, err := churn(ctx, prod, 2*time.Second)
	if err != nil {
		return err
	}
	if err := waitReplica(ctx, test, lastID, 30*time.Second); err != nil {
		return err
	}
	fmt.Printf("    the replica caught up with production's writes (customer %d arrived)\n", lastID)

	say("production beside its anonymized replica")
	if err := sideBySide(ctx, prod, test, []int64{1, 2, 3, 4, 5, lastID}); err != nil {
		return err
	}

	say("understudy status")
	understudy(ctx, "status").Run()
	say("understudy verify — target == transform(source)?")
	syncCmd.Process.Signal(syscall.SIGTERM)
	syncCmd.Wait()
	if err := understudy(ctx, "verify").Run(); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	say("done. Both servers stop now; the config and stores stay in %s", work)
	return nil
}

var (
	firsts = []string{"Ada", "Grace", "Alan", "Zoë", "José", "Åsa", "Nnamdi", "Mei", "Olga", "Søren"}
	lasts  = []string{"Johnson", "Müller-Lüdenscheidt", "O'Brien", "Nakamura", "García", "Smith", "Kowalski", "Nguyen"}
)

func seed(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, schema); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 2))
	var custs, accs [][]any
	for i := int64(1); i <= 20000; i++ {
		var first, last any = firsts[r.IntN(len(firsts))], lasts[r.IntN(len(lasts))]
		switch i {
		case 2:
			first = nil // a NULL name that the current app can no longer create
		case 3:
			first, last = "", "" // empty names from an old import
		}
		email := fmt.Sprintf("%s.%d@corp.example", strings.ToLower(fmt.Sprint(last)), i)
		profile := fmt.Sprintf(`{"email": %q, "newsletter": %t, "emergency_contact": {"name": "%s %s", "relation": "spouse"}}`,
			email, i%2 == 0, firsts[r.IntN(len(firsts))], lasts[r.IntN(len(lasts))])
		notes := any(nil)
		if i%1000 == 4 {
			notes = strings.Repeat("called about account; ", 300) // large TOASTed text
		}
		birth := time.Date(1950+r.IntN(50), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)
		tenant := 1 + i%3 // tenant 3 is not selected by the config's where: filter
		if i <= 4 {
			tenant = 1 // keep the odd cases in the replica, where they can be seen
		}
		custs = append(custs, []any{i, tenant, first, last, email, fmt.Sprintf("+1 (555) %03d-%04d", r.IntN(1000), r.IntN(10000)),
			fmt.Sprintf("%03d-%02d-%04d", r.IntN(900)+1, r.IntN(99)+1, r.IntN(9999)+1), birth, profile, notes})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"customers"},
		[]string{"id", "tenant_id", "first_name", "last_name", "email", "phone", "ssn", "birth_date", "profile", "notes"},
		pgx.CopyFromRows(custs)); err != nil {
		return err
	}
	statuses := []string{"open", "open", "open", "frozen", "closed"}
	for i := int64(1); i <= 30000; i++ {
		status := statuses[r.IntN(len(statuses))]
		if i%997 == 0 {
			status = "legacy_gold" // retired from the code years ago, still in the data
		}
		accs = append(accs, []any{i, 1 + (i-1)%20000, lasts[r.IntN(len(lasts))], fmt.Sprintf("DE%020d", r.Int64N(1e18)),
			status, fmt.Sprintf("%d.%02d", r.IntN(100000)-5000, r.IntN(100)), []string{"retail"}})
	}
	_, err = conn.Exec(ctx, "SET session_replication_role = replica") // seed accounts without per-row FK checks
	if err != nil {
		return err
	}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"accounts"},
		[]string{"id", "customer_id", "holder_name", "iban", "status", "balance", "tags"}, pgx.CopyFromRows(accs))
	return err
}

// churn writes to production for d: new customers, renames, deletes. It returns
// the id of the last customer inserted.
func churn(ctx context.Context, dsn string, d time.Duration) (int64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	id := int64(20000)
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		id++
		n++
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO customers (id, tenant_id, first_name, last_name, email)
				VALUES ($1, 1, 'Late', 'Johnson', $2)`, id, fmt.Sprintf("late%d@corp.example", id)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE customers SET last_name = 'Johnson' WHERE id = $1`, id-19000); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, id+5000)
			return err
		})
		if err != nil {
			return 0, err
		}
	}
	fmt.Printf("    %d transactions written to production\n", n)
	return id, nil
}

func waitReplica(ctx context.Context, dsn string, id int64, d time.Duration) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM customers WHERE id = $1`, id).Scan(&n); err == nil && n == 1 {
			return nil
		}
	}
	return fmt.Errorf("replica did not receive customer %d within %s", id, d)
}

func sideBySide(ctx context.Context, prod, test string, ids []int64) error {
	q := `SELECT id, coalesce(first_name, '∅NULL'), coalesce(last_name, '∅NULL'), email, coalesce(ssn, '∅NULL'),
	             coalesce(birth_date::text, '∅NULL'), coalesce(profile->'emergency_contact'->>'name', '∅NULL')
	      FROM customers WHERE id = ANY($1) ORDER BY id`
	read := func(dsn string) (map[int64][]string, error) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return nil, err
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, q, ids)
		if err != nil {
			return nil, err
		}
		out := map[int64][]string{}
		for rows.Next() {
			var id int64
			v := make([]string, 6)
			if err := rows.Scan(&id, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]); err != nil {
				return nil, err
			}
			out[id] = v
		}
		return out, rows.Err()
	}
	p, err := read(prod)
	if err != nil {
		return err
	}
	t, err := read(test)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\t\tFIRST\tLAST\tEMAIL\tSSN\tBIRTH\tCONTACT (json)")
	for _, id := range ids {
		fmt.Fprintf(tw, "%d\tprod\t%s\n", id, strings.Join(p[id], "\t"))
		if r, ok := t[id]; ok {
			fmt.Fprintf(tw, "\treplica\t%s\n", strings.Join(r, "\t"))
		} else {
			fmt.Fprintf(tw, "\treplica\t(not replicated: tenant filter)\n")
		}
	}
	return tw.Flush()
}
