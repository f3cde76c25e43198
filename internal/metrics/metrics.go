// Package metrics serves Parley's Prometheus metrics (prometheus/
// client_golang), named parley_…, on a listener of their own that the
// operator keeps private (serve --metrics): they describe the traffic.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-chat/parley/internal/store"
)

// Store is what the metrics read from storage.
type Store interface {
	Stats() store.Stats
	ObserveCommits(fn func(d time.Duration, writes int))
}

// Hub is what the metrics read from the sockets.
type Hub interface {
	Sockets() (widget, agent int)
	Resyncs() int64
}

// Handler registers the metrics of db and hub, with Go's and the
// process's, and returns the handler of GET /metrics.
func Handler(db Store, hub Hub) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	sockets := func(kind string, pick func(w, a int) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_sockets_open", Help: "Open websockets, by kind: widget (chat users) or agent (dashboard inboxes).",
			ConstLabels: prometheus.Labels{"kind": kind}}, func() float64 { return float64(pick(hub.Sockets())) })
	}
	reg.MustRegister(
		sockets("widget", func(w, _ int) int { return w }),
		sockets("agent", func(_, a int) int { return a }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parley_messages_committed_total", Help: "Messages committed by this node, by author.",
			ConstLabels: prometheus.Labels{"author": "user"}}, func() float64 { return float64(db.Stats().UserMessages) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parley_messages_committed_total", Help: "Messages committed by this node, by author.",
			ConstLabels: prometheus.Labels{"author": "agent"}}, func() float64 { return float64(db.Stats().AgentMessages) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parley_sessions_created_total", Help: "Widget sessions created by this node."},
			func() float64 { return float64(db.Stats().Sessions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parley_broker_resyncs_total", Help: "Times the broker said events may have been lost (reconnects, slow-consumer drops); the node then read the database."},
			func() float64 { return float64(hub.Resyncs()) }),
	)
	commits := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_commit_seconds", Help: "How long a write's commit took, the wait for the disk included.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	groups := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_commit_group_size", Help: "Writes per commit (SQLite commits waiting writes together; PostgreSQL one each).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}})
	reg.MustRegister(commits, groups)
	db.ObserveCommits(func(d time.Duration, writes int) {
		commits.Observe(d.Seconds())
		groups.Observe(float64(writes))
	})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
