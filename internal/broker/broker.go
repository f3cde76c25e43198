// Package broker carries hints between the nodes of a cluster: "a message
// was committed in conversation C with seq N", "someone is typing". It
// never carries what users wrote: a node that hears of a message reads it
// from the database, which is the truth. A hint may be lost (a broker
// restart, a network blip, a slow subscriber); a node finds that out by
// a gap in seq, or is told to resync, and reads what it missed from the
// database. Modelled on centrifugal/centrifuge's Broker: publish after
// commit, a handler for events and one for "you may have missed some".
//
// Three implementations: Local (one node: there is nobody to tell), NATS
// core pub/sub, and PostgreSQL LISTEN/NOTIFY.
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parley-chat/parley/internal/identity"
)

// Kinds of events.
const (
	KindMessage      = "message"      // ConversationID, Seq committed
	KindTyping       = "typing"       // Author (AuthorName) typing or not in ConversationID
	KindConversation = "conversation" // ConversationID's status (or, with SubjectID, agent read mark) changed
	KindUnread       = "unread"       // SubjectID's unread count changed
)

// Event is one hint. Node is the publisher, which ignores its own events:
// it delivered them to its sockets already.
type Event struct {
	Kind           string `json:"k"`
	Node           string `json:"n"`
	AppID          string `json:"a"`
	SubjectID      string `json:"s,omitempty"`
	ConversationID string `json:"c,omitempty"`
	Seq            int64  `json:"q,omitempty"`
	Author         string `json:"au,omitempty"`
	AuthorName     string `json:"an,omitempty"`
	Typing         bool   `json:"t,omitempty"`
	Status         string `json:"st,omitempty"`
}

// maxEventBytes keeps every event well under PostgreSQL's NOTIFY payload
// limit (8,000 bytes). Events hold ids and an author's name, all short;
// one that is not is refused rather than cut.
const maxEventBytes = 2000

func encode(e Event) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if len(b) > maxEventBytes {
		return nil, fmt.Errorf("broker: event of %d bytes is over the %d-byte limit", len(b), maxEventBytes)
	}
	return b, nil
}

func decode(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("broker: undecodable event: %w", err)
	}
	if e.Kind == "" || e.Node == "" {
		return Event{}, errors.New("broker: event without kind or node")
	}
	return e, nil
}

// decodeBatch reads a NOTIFY payload: a JSON array of events.
func decodeBatch(b []byte) ([]Event, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("broker: undecodable events: %w", err)
	}
	out := make([]Event, 0, len(raw))
	for _, r := range raw {
		e, err := decode(r)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Handler receives what other nodes published.
type Handler interface {
	// HandleEvent gets each event from another node, in the order the
	// broker delivered them, on one goroutine.
	HandleEvent(Event)
	// HandleResync says events may have been lost (the broker connection
	// came back, or this node fell behind): read the database again.
	HandleResync()
}

// Broker is one node's connection to the others.
type Broker interface {
	// Publish sends e to the other nodes, after its commit. An error
	// loses nothing: the others find the commit in the database.
	Publish(ctx context.Context, e Event) error
	// Ready reports whether the broker is connected, for /readyz.
	Ready(ctx context.Context) error
	// Close disconnects.
	Close() error
}

// NewNodeID names this node in the events it publishes.
func NewNodeID() string { return identity.NewID("node_") }

// Local is the broker of a single node: there is nobody to tell.
type Local struct{}

func (Local) Publish(context.Context, Event) error { return nil }
func (Local) Ready(context.Context) error          { return nil }
func (Local) Close() error                         { return nil }
