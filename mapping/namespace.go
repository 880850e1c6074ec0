package mapping

import "time"

// DailyGrace is how long a daily namespace outlives its UTC day, so that changes
// committed just before midnight and transformed just after (replication lag, a
// restart, a slow load) still find the day's mappings.
const DailyGrace = 24 * time.Hour

// PermanentNamespace returns the one namespace of permanent mappings.
func PermanentNamespace() Namespace { return Namespace{Scope: Permanent} }

// DailyNamespace returns the namespace of t's UTC day; it expires DailyGrace after
// the day ends.
func DailyNamespace(t time.Time) Namespace {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return Namespace{Scope: Daily, Period: day.Format(time.DateOnly), Expires: day.AddDate(0, 0, 1).Add(DailyGrace)}
}

// RunNamespace returns the namespace of one run or input file. It does not expire:
// `understudy reset` purges it (Purge(Run, id)).
func RunNamespace(id string) Namespace { return Namespace{Scope: Run, Period: id} }

// String names the namespace as "scope/period" ("permanent/", "daily/2024-05-01"),
// for stores' key layouts and for messages.
func (ns Namespace) String() string { return string(ns.Scope) + "/" + ns.Period }

// expired reports whether ns has an expiry that is not after now.
func (ns Namespace) expired(now time.Time) bool {
	return !ns.Expires.IsZero() && !ns.Expires.After(now)
}
