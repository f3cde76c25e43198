// Package metrics serves Parley's Prometheus metrics (prometheus/
// client_golang), named parley_…, on a listener of their own that the
// operator keeps private (serve --metrics): they describe the traffic.
package metrics

import (
	"context"
	"math"
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
	WebhookQueueDepth(ctx context.Context) (int64, error)
}

// Queue is what the metrics read from the job queue.
type Queue interface {
	Attempts() (delivered, failed, refused int64)
	Mails() (sent, failed int64)
}

// Hub is what the metrics read from the sockets.
type Hub interface {
	Sockets() (widget, agent int)
	Resyncs() int64
}

// Refusals are the widget sessions refused, by reason.
type Refusals interface {
	Counts() map[string]int64
}

// Handler registers the metrics of db, hub, the job queue and the
// session refusals, with Go's and the process's, and returns the handler
// of GET /metrics.
func Handler(db Store, hub Hub, jobs Queue, refusals Refusals) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(refusalCollector{refusals})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	sockets := func(kind string, pick func(w, a int) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_sockets_open", Help: "Open websockets, by kind: widget (chat users) or agent (dashboard inboxes).",
			ConstLabels: prometheus.Labels{"kind": kind}}, func() float64 { return float64(pick(hub.Sockets())) })
	}
	attempts := func(outcome string, pick func(d, f, r int64) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parley_webhook_deliveries_total",
			Help:        "Webhook attempts by this node, by outcome: delivered (2xx), failed (an error or another status), refused (an address the guard refuses).",
			ConstLabels: prometheus.Labels{"outcome": outcome}}, func() float64 { return float64(pick(jobs.Attempts())) })
	}
	mails := func(outcome string, pick func(s, f int64) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parley_emails_total",
			Help:        "E-mails this node handed to the SMTP server (sent), and attempts that failed (failed; each is tried again).",
			ConstLabels: prometheus.Labels{"outcome": outcome}}, func() float64 { return float64(pick(jobs.Mails())) })
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
		attempts("delivered", func(d, _, _ int64) int64 { return d }),
		attempts("failed", func(_, f, _ int64) int64 { return f }),
		attempts("refused", func(_, _, r int64) int64 { return r }),
		mails("sent", func(s, _ int64) int64 { return s }),
		mails("failed", func(_, f int64) int64 { return f }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_webhook_queue_depth", Help: "Webhook deliveries waiting for their first attempt or a retry, on every node."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				n, err := db.WebhookQueueDepth(ctx)
				if err != nil {
					return math.NaN()
				}
				return float64(n)
			}),
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

// refusalCollector reports the refusals by reason, each reason a series
// from its first refusal on.
type refusalCollector struct{ r Refusals }

var refusalDesc = prometheus.NewDesc("parley_sessions_refused_total",
	"Widget sessions this node refused, by reason: the error code the widget got (origin_not_allowed, parent_origin_not_allowed, identity_hash_invalid, identity_jwt_invalid, rate_limited, app_disabled, …).",
	[]string{"reason"}, nil)

func (c refusalCollector) Describe(ch chan<- *prometheus.Desc) { ch <- refusalDesc }

func (c refusalCollector) Collect(ch chan<- prometheus.Metric) {
	for reason, n := range c.r.Counts() {
		ch <- prometheus.MustNewConstMetric(refusalDesc, prometheus.CounterValue, float64(n), reason)
	}
}
