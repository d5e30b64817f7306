package main

import (
	"encoding/binary"
	"sync"
	"time"
)

// frameQueue carries one leg's frames from its taps to the live decoder in
// chunks of memory that are reused as the decoder moves on, so that a long
// transfer neither grows the process nor asks the kernel for fresh pages.
// Writers wait when the queue holds its maximum; after abort they drop.
type frameQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	chunks  [][]byte // in order; frames are appended to the last one
	rpos    int      // read offset in chunks[0]
	free    [][]byte
	alloc   int // chunks made
	max     int
	closed  bool
	aborted bool
	notify  chan struct{} // poked on every push (shared by every queue)
	// pending holds the stamps of frames whose writers are inside push
	// (waiting for room): the reader must not pass them.
	pending []int64
}

const queueChunk = 1 << 20

func newFrameQueue(maxChunks int, notify chan struct{}) *frameQueue {
	q := &frameQueue{max: maxChunks, notify: notify}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push appends one frame: its time, original length and bytes (head then
// payload).
func (q *frameQueue) push(ts time.Time, head, payload []byte, orig int) {
	n := len(head) + len(payload)
	need := 16 + n
	stamp := ts.UnixNano()
	q.mu.Lock()
	q.pending = append(q.pending, stamp)
	defer q.unpend(stamp)
	for {
		if q.aborted || q.closed {
			return
		}
		if k := len(q.chunks); k > 0 && len(q.chunks[k-1])+need <= cap(q.chunks[k-1]) {
			break
		}
		if len(q.free) > 0 && need <= queueChunk {
			c := q.free[len(q.free)-1]
			q.free = q.free[:len(q.free)-1]
			q.chunks = append(q.chunks, c[:0])
			break
		}
		if q.alloc < q.max || need > queueChunk {
			q.alloc++
			q.chunks = append(q.chunks, make([]byte, 0, max(queueChunk, need)))
			break
		}
		q.cond.Wait() // full: the decoder is behind
	}
	c := q.chunks[len(q.chunks)-1]
	var hdr [16]byte
	binary.LittleEndian.PutUint64(hdr[0:], uint64(ts.UnixNano()))
	binary.LittleEndian.PutUint32(hdr[8:], uint32(n))
	binary.LittleEndian.PutUint32(hdr[12:], uint32(max(orig, n)))
	c = append(c, hdr[:]...)
	c = append(c, head...)
	c = append(c, payload...)
	q.chunks[len(q.chunks)-1] = c
}

// unpend forgets a writer's stamp once its frame is in (or dropped), and
// unlocks q.mu.
func (q *frameQueue) unpend(stamp int64) {
	for i, p := range q.pending {
		if p == stamp {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			break
		}
	}
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// peek returns the time of the oldest frame, queued or still being
// pushed (ok), and whether that frame can be popped (ready).
func (q *frameQueue) peek() (ts time.Time, ok, ready bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.advance()
	var t int64
	if len(q.chunks) > 0 && q.rpos < len(q.chunks[0]) {
		t, ok, ready = int64(binary.LittleEndian.Uint64(q.chunks[0][q.rpos:])), true, true
	}
	for _, p := range q.pending {
		if !ok || p < t {
			t, ok, ready = p, true, false
		}
	}
	return time.Unix(0, t), ok, ready
}

// advance drops a chunk the reader has finished when a later one exists.
// q.mu is held.
func (q *frameQueue) advance() {
	for len(q.chunks) > 1 && q.rpos >= len(q.chunks[0]) {
		c := q.chunks[0]
		q.chunks = q.chunks[1:]
		q.rpos = 0
		if cap(c) == queueChunk {
			q.free = append(q.free, c[:0])
		} else {
			q.alloc-- // an outsized frame's own chunk
		}
		q.cond.Broadcast()
	}
}

// pop hands the oldest frame to fn. The bytes stay valid during fn: a
// chunk is only reused after the reader has left it.
func (q *frameQueue) pop(fn func(ts time.Time, data []byte, orig int) error) error {
	q.mu.Lock()
	q.advance()
	c := q.chunks[0]
	h := c[q.rpos:]
	ts := time.Unix(0, int64(binary.LittleEndian.Uint64(h)))
	n := int(binary.LittleEndian.Uint32(h[8:]))
	orig := int(binary.LittleEndian.Uint32(h[12:]))
	data := h[16 : 16+n]
	q.rpos += 16 + n
	q.mu.Unlock()
	return fn(ts, data, orig)
}

// close ends the input: the reader drains what is left.
func (q *frameQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// abort makes writers drop their frames from now on (the reader is gone).
func (q *frameQueue) abort() {
	q.mu.Lock()
	q.aborted = true
	q.chunks, q.free = nil, nil
	q.cond.Broadcast()
	q.mu.Unlock()
}

// liveLateness is how long the live decoder waits before it takes a
// frame, so that frames of other legs stamped earlier but delivered later
// (a capture hands packets over a block at a time) come first.
const liveLateness = 50 * time.Millisecond

// mergeQueues hands the frames of every queue to fn in time order, each
// frame once it is liveLateness old (at once after ended is closed), until
// ended is closed and every queue is empty. On fn's error it aborts the
// queues and returns it. The queues must be closed before ended.
func mergeQueues(qs []*frameQueue, notify, ended <-chan struct{}, fn func(leg int, ts time.Time, data []byte, orig int) error) error {
	for {
		ending := false
		select {
		case <-ended:
			ending = true
		default:
		}
		best, ready := -1, false
		var bestTs time.Time
		for i, q := range qs {
			if ts, ok, r := q.peek(); ok && (best < 0 || ts.Before(bestTs)) {
				best, bestTs, ready = i, ts, r
			}
		}
		if best >= 0 && !ready {
			// The oldest frame is still on its way in (its writer waits for
			// room, which the reader has just made): take nothing before it.
			select {
			case <-notify:
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		if best < 0 {
			if ending {
				return nil
			}
			select {
			case <-notify:
			case <-ended:
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if !ending {
			if wait := time.Until(bestTs.Add(liveLateness)); wait > 0 {
				select {
				case <-ended:
				case <-time.After(min(wait, 20*time.Millisecond)):
				}
				continue
			}
		}
		leg := best
		if err := qs[best].pop(func(ts time.Time, data []byte, orig int) error { return fn(leg, ts, data, orig) }); err != nil {
			for _, q := range qs {
				q.abort()
			}
			return err
		}
	}
}
