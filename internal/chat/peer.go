package chat

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Flow control of a connection's send queue. A client that does not read
// is cut off once either bound is reached (its TCP connection is closed
// with no close frame, which could not get through), so it holds at most
// maxQueuedBytes of frames (or one larger frame alone), plus the one
// being written. The byte bound admits a burst of about 60 messages of
// the longest body (a 4,000-byte body makes a frame of about 4.2 KB), so
// a healthy client is not cut for a burst that the count bound allows
// just because its writer has not run yet; it stops a client from holding
// 64 large frames (a history can be hundreds of KB).
//
// An inbox socket gets every message of its app, so at a busy app's rate
// 64 frames are a few tens of milliseconds of backlog, which a moment of
// scheduling delay on a loaded machine exceeds: its bounds are wider.
// There are few of them (one per signed-in owner's open inbox).
const (
	sendQueue      = 64        // frames queued for a widget client before it counts as slow
	maxQueuedBytes = 256 << 10 // bytes queued for a widget client before it counts as slow

	agentSendQueue      = 1024    // the same for an inbox socket
	agentMaxQueuedBytes = 1 << 20 // the same for an inbox socket

	// closeLinger bounds how long a connection waits, after its close
	// frame, for the client to close its side. Closing a TCP connection
	// with unread client frames in its receive buffer makes the kernel
	// send a reset, which can destroy the close frame and the frames
	// before it; so the server discards what the client still sends
	// until it hangs up, or until this passes.
	closeLinger = 2 * time.Second
)

// peer is the write side of one connection, the same for widget and agent
// sockets: a bounded send queue and what drains it. It also pings, ends
// the connection when its session expires and sends the close frame.
//
// Two kinds of client fill the queue, and they are told apart. A slow
// reader lets broadcasts pile up: it is cut when a bound is reached. A
// flooder that reads makes the server answer every frame it sends: the
// read pump waits (waitForRoom) while half the queue is taken, so the
// flooder is paced by its own reading, and its answers (acks of what was
// committed among them) are never dropped to cut it as slow.
//
// An idle connection costs one goroutine, the read pump's. Nothing writes
// until there is something to write: queuing a frame starts a writer
// goroutine that writes the queue out in order and ends when it is empty.
// Pings, the session expiry and the recheck are runtime timers whose
// callbacks run only when they fire.
type peer struct {
	conn      *websocket.Conn
	logger    func() *slog.Logger // built when something is logged, not per connection
	expiresAt time.Time           // the connection is closed with 4001 then
	// recheck, when set, is asked every recheckEvery whether the session
	// still holds; the connection is closed with 4001 when it does not.
	recheck      func() bool
	recheckEvery time.Duration

	maxFrames, maxBytes int // the send queue's bounds

	mu          sync.Mutex
	queued      []outFrame // oldest first; nil when empty
	queuedBytes int
	started     bool // run has begun: a writer may be started
	writing     bool // a goroutine is writing the queue out
	closing     bool // closeWith was called: nothing more is queued
	closeCode   int
	closeText   string
	timers      [3]*time.Timer // ping, expiry, recheck
	room        chan struct{}  // closed when the queue has room again; nil unless the reader waits
	ended       chan struct{}  // closed once the connection is closed
	readDone    chan struct{}  // closed once the read side is finished: the client hung up, or closeLinger passed

	// readMu orders stopping and the read deadline together, so that a
	// deadline extension never undoes stopReading. stopping is atomic so
	// that waitForRoom reads it under mu without taking readMu.
	readMu   sync.Mutex
	stopping atomic.Bool // set by stopReading: the server is shutting down
}

// outFrame is a queued frame. A frame with a key supersedes a queued one
// with the same key (see queueLatest).
type outFrame struct {
	data []byte
	key  string
}

func newPeer(conn *websocket.Conn, logger func() *slog.Logger, expiresAt time.Time) *peer {
	return &peer{conn: conn, logger: logger, expiresAt: expiresAt, maxFrames: sendQueue, maxBytes: maxQueuedBytes}
}

// run serves the connection: read runs on the calling goroutine while
// frames are written as they are queued. It returns once the connection
// is closed.
func (p *peer) run(read func()) {
	p.mu.Lock()
	p.ended = make(chan struct{})
	p.readDone = make(chan struct{})
	p.started = true
	if !p.closing { // a close before the start needs no timers
		p.timers[0] = time.AfterFunc(pingPeriod, p.ping)
		p.timers[1] = time.AfterFunc(time.Until(p.expiresAt), func() { p.closeWith(CloseSessionInvalid, "session expired") })
		if p.recheck != nil {
			p.timers[2] = time.AfterFunc(p.recheckEvery, p.doRecheck)
		}
	}
	if len(p.queued) > 0 || p.closing {
		p.startWriterLocked()
	}
	ended := p.ended
	p.mu.Unlock()
	read()
	if p.isStopping() {
		p.closeWith(closeGoingAway, "server shutting down")
	} else {
		p.closeWith(websocket.CloseNormalClosure, "")
	}
	discardUntilHangUp(p.conn, time.Now().Add(writeWait+closeLinger))
	close(p.readDone)
	<-ended
}

// waitForRoom is called by a read pump before it reads a frame. It waits
// while the queue is half full, by count or by bytes, so that a client's
// own answers never fill it: a client that sends faster than it reads is
// slowed down to its reading speed (its frames wait in TCP's buffers),
// and the other half stays free for broadcasts. It returns false once the
// connection is closing or the server is stopping: no frame is read and
// handled after that.
func (p *peer) waitForRoom() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.closing && !p.stopping.Load() && p.full() {
		if p.room == nil {
			p.room = make(chan struct{})
		}
		room := p.room
		p.mu.Unlock()
		<-room
		p.mu.Lock()
	}
	return !p.closing && !p.stopping.Load()
}

// full reports whether the reader must wait for the writer.
func (p *peer) full() bool {
	return len(p.queued) >= p.maxFrames/2 || p.queuedBytes >= p.maxBytes/2
}

// wakeReaderLocked lets a waiting reader go on once there is room.
func (p *peer) wakeReaderLocked() {
	if p.room != nil && (p.closing || p.stopping.Load() || !p.full()) {
		close(p.room)
		p.room = nil
	}
}

// stopReading is how a shutdown drains a connection: the frame being
// handled (a message being committed, say) finishes and queues its answer,
// no further frame is read, and the connection is then closed with 1001
// after everything queued has been written.
func (p *peer) stopReading() {
	p.readMu.Lock()
	p.stopping.Store(true)
	p.conn.SetReadDeadline(time.Now()) // a blocked read returns at once
	p.readMu.Unlock()
	p.mu.Lock()
	p.wakeReaderLocked() // a reader waiting for room reads nothing more
	p.mu.Unlock()
}

// extendRead pushes the read deadline d ahead, unless stopReading was called.
func (p *peer) extendRead(d time.Duration) error {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	if p.stopping.Load() {
		return nil
	}
	return p.conn.SetReadDeadline(time.Now().Add(d))
}

func (p *peer) isStopping() bool { return p.stopping.Load() }

// isClosing reports whether closeWith was called.
func (p *peer) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}

// queue hands a frame to the writer. A client whose queue is full, by
// count or by bytes, is not keeping up; it is cut off rather than let it
// hold memory or slow delivery to others.
func (p *peer) queue(frame []byte) { p.enqueue(frame, "") }

// queueLatest queues a frame that supersedes any queued frame with the
// same key: that one is dropped, and this one goes to the back of the
// queue. Only state that a later frame states whole is queued this way
// (the unread count, a typing indicator, a conversation's status), so
// what the client receives is what it would have received, less the
// frames a later one made stale. Messages are never superseded.
func (p *peer) queueLatest(key string, frame []byte) { p.enqueue(frame, key) }

func (p *peer) enqueue(frame []byte, key string) {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return
	}
	if key != "" {
		for i, f := range p.queued {
			if f.key == key {
				p.queuedBytes -= len(f.data)
				copy(p.queued[i:], p.queued[i+1:])
				p.queued[len(p.queued)-1] = outFrame{}
				p.queued = p.queued[:len(p.queued)-1]
				break // there is never more than one
			}
		}
	}
	if len(p.queued) >= p.maxFrames || (len(p.queued) > 0 && p.queuedBytes+len(frame) > p.maxBytes) {
		p.closeLocked(websocket.CloseAbnormalClosure, "")
		p.mu.Unlock()
		p.logger().Warn("dropping slow client")
		p.conn.Close() // its buffers are full: no close frame would get through, and a blocked write ends now
		return
	}
	if p.queued == nil {
		p.queued = make([]outFrame, 0, 4)
	}
	p.queued = append(p.queued, outFrame{data: frame, key: key})
	p.queuedBytes += len(frame)
	p.startWriterLocked()
	p.mu.Unlock()
}

// closeWith ends the connection once: the writer writes what is queued
// (an error frame explaining the close, say), then the close frame.
func (p *peer) closeWith(code int, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked(code, text)
}

func (p *peer) closeLocked(code int, text string) {
	if p.closing {
		return
	}
	p.closing = true
	p.closeCode, p.closeText = code, text
	if code == websocket.CloseAbnormalClosure {
		// Nothing queued will be written: writing to it is what failed,
		// or it fell too far behind.
		p.queued, p.queuedBytes = nil, 0
	}
	p.wakeReaderLocked()
	p.startWriterLocked()
}

// startWriterLocked starts a writer unless one is running or run has not
// begun (until then the connection's refusals are written directly).
func (p *peer) startWriterLocked() {
	if p.writing || !p.started {
		return
	}
	p.writing = true
	go p.write()
}

// write writes the queue out, oldest first, and ends when it is empty. It
// is the only goroutine writing data frames. Once the connection is
// closing it writes what is left, then the close frame, and closes it.
func (p *peer) write() {
	for {
		p.mu.Lock()
		if p.closing {
			p.mu.Unlock()
			p.finish()
			return
		}
		if len(p.queued) == 0 {
			p.queued = nil // an idle connection holds no queue
			p.writing = false
			p.mu.Unlock()
			return
		}
		f := p.queued[0]
		p.queued[0] = outFrame{}
		p.queued = p.queued[1:]
		p.queuedBytes -= len(f.data)
		p.wakeReaderLocked()
		p.mu.Unlock()
		p.conn.SetWriteDeadline(time.Now().Add(writeWait))
		if err := p.conn.WriteMessage(websocket.TextMessage, f.data); err != nil {
			p.closeWith(websocket.CloseAbnormalClosure, "")
		}
	}
}

// finish writes what is still queued and the close frame, then closes the
// connection, which ends the read pump. A slow or broken connection gets
// neither: writing to it is what failed. After the close frame the
// connection is half-closed and closed only once the read side is done
// (see closeLinger), so the client reads the close frame rather than a
// reset.
func (p *peer) finish() {
	defer close(p.ended)
	defer p.conn.Close()
	p.mu.Lock()
	for _, t := range p.timers {
		if t != nil {
			t.Stop()
		}
	}
	frames, code, text := p.queued, p.closeCode, p.closeText
	p.queued, p.queuedBytes = nil, 0
	p.mu.Unlock()
	if code == websocket.CloseAbnormalClosure {
		return
	}
	deadline := time.Now().Add(writeWait)
	p.conn.SetWriteDeadline(deadline)
	var err error
	for _, f := range frames {
		if err = p.conn.WriteMessage(websocket.TextMessage, f.data); err != nil {
			break
		}
	}
	if err == nil {
		err = p.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), deadline)
	}
	// ErrCloseSent: gorilla wrote a close frame itself (1009 for a frame
	// over the read limit, whose rest is unread): linger all the same.
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		return
	}
	closeWrite(p.conn)
	linger := time.NewTimer(closeLinger)
	defer linger.Stop()
	select {
	case <-p.readDone:
	case <-linger.C: // the read pump is closed with the connection
	}
}

// closeWrite sends the client a FIN after the close frame: a client that
// has read the close frame then hangs up, which ends the linger at once.
func closeWrite(conn *websocket.Conn) {
	if c, ok := conn.NetConn().(interface{ CloseWrite() error }); ok {
		c.CloseWrite()
	}
}

// discardUntilHangUp reads and drops whatever the client sends until it
// closes its side, the connection is closed, or deadline passes. It reads
// the raw connection: the websocket's read side may already have failed,
// and nothing read now is handled anyway.
func discardUntilHangUp(conn *websocket.Conn, deadline time.Time) {
	nc := conn.NetConn()
	nc.SetReadDeadline(deadline)
	io.Copy(io.Discard, nc)
}

// ping runs on its timer's goroutine. Control frames may be written
// alongside the writer's data frames.
func (p *peer) ping() {
	if p.isClosing() {
		return
	}
	if err := p.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
		p.closeWith(websocket.CloseAbnormalClosure, "")
		return
	}
	p.resetTimer(0, pingPeriod)
}

func (p *peer) doRecheck() {
	if p.isClosing() {
		return
	}
	if !p.recheck() {
		p.closeWith(CloseSessionInvalid, "session ended")
		return
	}
	p.resetTimer(2, p.recheckEvery)
}

// resetTimer rearms a periodic timer unless the connection is closing (the
// writer stops the timers when it finishes).
func (p *peer) resetTimer(i int, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closing {
		p.timers[i].Reset(d)
	}
}
