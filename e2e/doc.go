// Package e2e holds understudy's robustness end-to-end tests for Postgres → Postgres.
//
// Every test builds nothing itself: TestMain builds the understudy binary once and
// the tests run it as a subprocess (kill -9 needs a real process) against two real
// Postgres 15 servers that the tests start themselves (testenv): "production" and
// "test". The scenarios are the ones the Postgres issue lists:
//
//   - a bank-like schema with production's odd data, checked column by column after
//     load (bank_test.go);
//   - kill -9 during load and during sync, restart, converge (kill_test.go);
//   - sync under pgbench, and the one-line refusal of a table without a key
//     (pgbench_test.go);
//   - a leak test with canary values that must appear nowhere but production
//     (leak_test.go);
//   - reset restoring a damaged target that verify detected (bank_test.go).
//
// The package has no non-test code; this file only documents it.
package e2e
