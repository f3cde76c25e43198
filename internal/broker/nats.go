package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"
)

// natsSubject is the one subject every node publishes to and listens on.
// Each node hears every event and keeps those its sockets care about; at
// the rates one database sustains, that costs less than subscribing per
// conversation as sockets come and go.
const natsSubject = "parley.events"

// NATS is a broker over NATS core pub/sub: at most once, so the handler
// is told to resync whenever the connection comes back or this node was
// too slow and NATS dropped events for it.
type NATS struct {
	nc  *nats.Conn
	sub *nats.Subscription
}

// OpenNATS connects to the NATS server at natsURL and hands other nodes'
// events to h. It returns at once even while the server is down, and
// keeps reconnecting for as long as the node runs; Ready says when it is
// connected.
func OpenNATS(natsURL string, node string, h Handler, log *slog.Logger) (*NATS, error) {
	u, err := url.Parse(natsURL)
	if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
		return nil, fmt.Errorf("broker: the NATS URL must look like nats://HOST:PORT")
	}
	nc, err := nats.Connect(natsURL,
		nats.Name("parley "+node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.PingInterval(5*time.Second), // a dead server is noticed within seconds, not minutes
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("broker: disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			log.Info("broker: reconnected to NATS")
			h.HandleResync()
		}),
		nats.ConnectHandler(func(*nats.Conn) {
			h.HandleResync() // the first connection of RetryOnFailedConnect
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				log.Warn("broker: NATS dropped events for this node (slow consumer); reading them from the database")
				h.HandleResync()
				return
			}
			log.Warn("broker: NATS", "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("broker: connect to NATS: %w", err)
	}
	sub, err := nc.Subscribe(natsSubject, func(m *nats.Msg) {
		e, err := decode(m.Data)
		if err != nil {
			log.Warn("broker: dropped an event", "err", err)
			return
		}
		if e.Node != node {
			h.HandleEvent(e)
		}
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("broker: subscribe: %w", err)
	}
	// The subscription is sent asynchronously: a round trip makes sure the
	// server has it before this node calls itself ready. (While the server
	// is down this fails, and the subscription goes out on connecting.)
	nc.FlushTimeout(2 * time.Second)
	return &NATS{nc: nc, sub: sub}, nil
}

func (b *NATS) Publish(_ context.Context, e Event) error {
	data, err := encode(e)
	if err != nil {
		return err
	}
	// While disconnected, nats.go buffers what is published and sends it
	// on reconnecting; the others resync then anyway.
	if err := b.nc.Publish(natsSubject, data); err != nil {
		return fmt.Errorf("broker: publish: %w", err)
	}
	return nil
}

func (b *NATS) Ready(context.Context) error {
	if !b.nc.IsConnected() {
		return errors.New("broker: not connected to NATS")
	}
	return nil
}

func (b *NATS) Close() error {
	b.nc.Close()
	return nil
}
