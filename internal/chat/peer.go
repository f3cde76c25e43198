package chat

import (
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// peer is the write side of one connection, the same for widget and agent
// sockets: a bounded send queue drained by one write pump, which also
// pings, ends the connection when its session expires and sends the close
// frame.
type peer struct {
	conn      *websocket.Conn
	log       *slog.Logger
	expiresAt time.Time // the connection is closed with 4001 then
	// recheck, when set, is asked every recheckEvery whether the session
	// still holds; the connection is closed with 4001 when it does not.
	recheck      func() bool
	recheckEvery time.Duration

	send      chan []byte
	done      chan struct{}
	closeOnce sync.Once
	closeCode int
	closeText string

	// readMu guards stopping and the read deadline together, so that a
	// deadline extension never undoes stopReading.
	readMu   sync.Mutex
	stopping bool // set by stopReading: the server is shutting down
}

func newPeer(conn *websocket.Conn, log *slog.Logger, expiresAt time.Time) *peer {
	return &peer{conn: conn, log: log, expiresAt: expiresAt, send: make(chan []byte, sendQueue), done: make(chan struct{})}
}

// run writes on a second goroutine while read runs on the calling one,
// and returns once both have finished.
func (p *peer) run(read func()) {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		p.writePump()
	}()
	read()
	if p.isStopping() {
		p.closeWith(closeGoingAway, "server shutting down")
	} else {
		p.closeWith(websocket.CloseNormalClosure, "")
	}
	<-writerDone
}

// stopReading is how a shutdown drains a connection: the frame being
// handled (a message being committed, say) finishes and queues its answer,
// no further frame is read, and the connection is then closed with 1001
// after everything queued has been written.
func (p *peer) stopReading() {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	p.stopping = true
	p.conn.SetReadDeadline(time.Now()) // a blocked read returns at once
}

// extendRead pushes the read deadline d ahead, unless stopReading was called.
func (p *peer) extendRead(d time.Duration) error {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	if p.stopping {
		return nil
	}
	return p.conn.SetReadDeadline(time.Now().Add(d))
}

func (p *peer) isStopping() bool {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	return p.stopping
}

// queue hands a frame to the write pump. A client whose queue is full is
// not keeping up; it is cut off rather than let it hold memory or slow
// delivery to others.
func (p *peer) queue(frame []byte) {
	select {
	case p.send <- frame:
	case <-p.done:
	default:
		p.log.Warn("dropping slow client")
		p.closeWith(websocket.CloseTryAgainLater, "too slow")
		p.conn.Close() // its buffers are full: no close frame would get through, and a blocked write ends now
	}
}

// closeWith ends the connection once; the write pump sends the close frame.
func (p *peer) closeWith(code int, text string) {
	p.closeOnce.Do(func() {
		p.closeCode, p.closeText = code, text
		close(p.done)
	})
}

func (p *peer) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer ticker.Stop()
	expiry := time.NewTimer(time.Until(p.expiresAt))
	defer expiry.Stop()
	var recheck <-chan time.Time // nil: never
	if p.recheck != nil {
		t := time.NewTicker(p.recheckEvery)
		defer t.Stop()
		recheck = t.C
	}
	defer p.conn.Close() // unblocks the read pump
	for {
		select {
		case frame := <-p.send:
			p.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := p.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				p.closeWith(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-ticker.C:
			p.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := p.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				p.closeWith(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-expiry.C:
			p.closeWith(CloseSessionInvalid, "session expired")
		case <-recheck:
			if !p.recheck() {
				p.closeWith(CloseSessionInvalid, "session ended")
			}
		case <-p.done:
			p.drainAndClose()
			return
		}
	}
}

// drainAndClose writes what is already queued (an error frame explaining
// the close, say) and then the close frame. A slow or broken connection
// gets neither: writing to it is what failed.
func (p *peer) drainAndClose() {
	if p.closeCode == websocket.CloseAbnormalClosure {
		return
	}
	deadline := time.Now().Add(writeWait)
	p.conn.SetWriteDeadline(deadline)
	for p.closeCode != websocket.CloseTryAgainLater && len(p.send) > 0 {
		if p.conn.WriteMessage(websocket.TextMessage, <-p.send) != nil {
			return
		}
	}
	p.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(p.closeCode, p.closeText), deadline)
}
