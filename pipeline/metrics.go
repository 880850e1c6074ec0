package pipeline

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the Prometheus series a pipeline reports. Label values are pipeline
// and table names only: metrics never carry row values. A nil *Metrics records
// nothing, so tests and one-shot commands need not set it up.
type Metrics struct {
	Registry *prometheus.Registry

	changes   *prometheus.CounterVec
	filtered  *prometheus.CounterVec
	lagSec    *prometheus.GaugeVec
	batchSec  *prometheus.HistogramVec
	snapRows  *prometheus.CounterVec
	snapDone  *prometheus.GaugeVec
	snapTotal *prometheus.GaugeVec
	lastApply *prometheus.GaugeVec
	stageSec  *prometheus.CounterVec
	nonJSON   *nonJSONCollector
}

// NewMetrics registers the pipeline series (plus Go runtime ones) on a new registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "understudy_changes_applied_total", Help: "Changes applied to the target."}, []string{"pipeline"}),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "understudy_changes_filtered_total", Help: "Changes dropped by row filters."}, []string{"pipeline"}),
		lagSec: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "understudy_lag_seconds", Help: "Seconds between the source commit and its apply, for the last applied transaction."}, []string{"pipeline"}),
		batchSec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "understudy_batch_seconds", Help: "Time to transform, apply and checkpoint one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"pipeline"}),
		snapRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "understudy_snapshot_rows_total", Help: "Rows written by the initial load."}, []string{"pipeline", "table"}),
		snapDone: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "understudy_snapshot_chunks_done", Help: "Snapshot chunks finished."}, []string{"pipeline", "table"}),
		snapTotal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "understudy_snapshot_chunks_total", Help: "Snapshot chunks planned."}, []string{"pipeline", "table"}),
		lastApply: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "understudy_last_apply_timestamp_seconds", Help: "Unix time of the last applied batch."}, []string{"pipeline"}),
		stageSec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "understudy_stage_busy_seconds_total",
			Help: "Seconds the stream spent transforming batches (stage=transform) and writing them with their checkpoint (stage=apply); the stages overlap, so the one whose rate nears 1 limits throughput."},
			[]string{"pipeline", "stage"}),
		nonJSON: &nonJSONCollector{by: map[string]*nonJSONSeries{}, desc: prometheus.NewDesc("understudy_non_json_messages_total",
			"Message values that were not JSON, by the source's non_json policy: drop (skipped) or pass (forwarded; json rules hash them whole).",
			[]string{"pipeline", "policy"}, nil)},
	}
	r.MustRegister(m.changes, m.filtered, m.lagSec, m.batchSec, m.snapRows, m.snapDone, m.snapTotal, m.lastApply, m.stageSec, m.nonJSON,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

func (m *Metrics) applied(pipeline string, n, filtered int, d time.Duration) {
	if m == nil {
		return
	}
	m.changes.WithLabelValues(pipeline).Add(float64(n))
	if filtered > 0 {
		m.filtered.WithLabelValues(pipeline).Add(float64(filtered))
	}
	m.batchSec.WithLabelValues(pipeline).Observe(d.Seconds())
	m.lastApply.WithLabelValues(pipeline).SetToCurrentTime()
}

func (m *Metrics) stageBusy(pipeline, stage string, d time.Duration) {
	if m == nil {
		return
	}
	m.stageSec.WithLabelValues(pipeline, stage).Add(d.Seconds())
}

func (m *Metrics) lag(pipeline string, commit time.Time) {
	if m == nil || commit.IsZero() {
		return
	}
	m.lagSec.WithLabelValues(pipeline).Set(max(time.Since(commit).Seconds(), 0))
}

func (m *Metrics) snapshotRows(pipeline, table string, n int) {
	if m == nil {
		return
	}
	m.snapRows.WithLabelValues(pipeline, table).Add(float64(n))
}

func (m *Metrics) snapshotChunks(pipeline, table string, done, total int) {
	if m == nil {
		return
	}
	m.snapDone.WithLabelValues(pipeline, table).Set(float64(done))
	m.snapTotal.WithLabelValues(pipeline, table).Set(float64(total))
}

// mapperStats exports the mapping cache's hit and miss counts.
func (m *Metrics) mapperStats(stats func() (hits, misses uint64)) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "understudy_mapping_cache_hits_total",
			Help: "Values answered by the in-process mapping cache."}, func() float64 { h, _ := stats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "understudy_mapping_cache_misses_total",
			Help: "Values that needed the mapping store."}, func() float64 { _, m := stats(); return float64(m) }),
	)
}

// NonJSONCounter is implemented by sources with a policy for message values that
// are not JSON (Kafka's non_json=drop|pass): how many they dropped and passed.
type NonJSONCounter interface {
	NonJSON() (dropped, passed uint64)
}

// source exports what a pipeline's source counts itself (NonJSONCounter). Call
// it for every source built: a retry's new source continues the pipeline's
// counters.
func (m *Metrics) source(pipeline string, src any) {
	nj, ok := src.(NonJSONCounter)
	if m == nil || !ok {
		return
	}
	m.nonJSON.mu.Lock()
	defer m.nonJSON.mu.Unlock()
	s := m.nonJSON.by[pipeline]
	if s == nil {
		s = &nonJSONSeries{}
		m.nonJSON.by[pipeline] = s
	}
	if s.live != nil { // the previous source is closed: its counts are final
		d, p := s.live.NonJSON()
		s.dropped, s.passed = s.dropped+d, s.passed+p
	}
	s.live = nj
}

// nonJSONCollector reads the sources' counters at scrape time.
type nonJSONCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	by   map[string]*nonJSONSeries // by pipeline
}

type nonJSONSeries struct {
	dropped, passed uint64 // of earlier sources of the pipeline
	live            NonJSONCounter
}

func (c *nonJSONCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *nonJSONCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, s := range c.by {
		d, p := s.live.NonJSON()
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(s.dropped+d), name, "drop")
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(s.passed+p), name, "pass")
	}
}
