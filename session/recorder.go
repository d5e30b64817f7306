package session

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pftap/pftap/internal/tcpframe"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/decode/packet"
)

// A Recorder writes a live session to pcapng as it goes, so that a
// process killed in the middle (SIGKILL, a crash, a machine that dies)
// leaves a file that Wireshark, tshark and pftap read up to the last packet
// written. Frames wait in a queue per leg, and a goroutine writes them
// every writeEvery, merged in time order, writeLateness behind the taps
// (the live decoder's own lateness, twice: a capture ring hands its
// packets over late); each packet gets the one-line summaries of the
// events it completes as its comment. What is known only at the end (the
// requests' results, the app's log, each leg's drops) goes in the
// Interface Statistics Blocks that end the file.
//
// The queues hold at most writeBudget bytes: when the disk cannot keep up,
// the taps wait for it, and the transfer runs at the speed of the disk
// rather than the recording growing in memory.
type Recorder struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []legQueue
	bytes  int
	closed bool // no more frames are taken
	err    error

	f       *os.File
	path    string
	w       *capture.Writer // nil until start
	legs    []capture.Leg
	dec     *decode.Decoder
	texts   []string
	p       packet.Packet
	packets int64
	first   []time.Time // per leg
	last    []time.Time
	count   []uint64
	stop    chan struct{}
	done    chan struct{}
	running bool     // Start succeeded: run writes the frames
	free    []*arena // arenas to reuse
	arenas  int      // arenas allocated
}

type legQueue struct {
	frames []recFrame
	head   int
	arena  *arena // the frames' bytes are copied here
	// inproc: an in-process tap records this leg, leaving its TCP
	// checksums to the Recorder.
	inproc bool
}

type recFrame struct {
	ts    time.Time
	data  []byte
	orig  int
	arena *arena
	note  string // joins the packet's comment
}

// An arena holds the bytes of a leg's queued frames. Once full and every
// frame in it written, it is used again (a transfer would otherwise
// allocate, and clear, as many bytes as it records).
type arena struct {
	buf     []byte
	users   int  // frames in it not yet written
	retired bool // full: no frame is added any more
}

const (
	writeEvery = 50 * time.Millisecond
	// writeLateness is twice the live decoder's lateness (50 ms): a
	// capture ring hands packets over a block at a time.
	writeLateness = 100 * time.Millisecond
	writeBudget   = 160 << 20
	arenaSize     = 1 << 20
	// maxFreeArenas bounds the arenas kept for reuse.
	maxFreeArenas = 16
)

// NewRecorder takes the file the recording goes to (opened before the
// session, so that a bad path fails at once: capture.CreateFile). Frames
// can be added before Start; they wait.
func NewRecorder(f *os.File) *Recorder {
	sw := &Recorder{f: f, path: f.Name(), stop: make(chan struct{}), done: make(chan struct{})}
	sw.cond = sync.NewCond(&sw.mu)
	return sw
}

// AddLeg adds a queue for the next leg; inproc says an in-process tap
// records it (its TCP checksums are left to the Recorder).
func (sw *Recorder) AddLeg(inproc bool) {
	sw.mu.Lock()
	sw.q = append(sw.q, legQueue{inproc: inproc})
	sw.mu.Unlock()
}

// Add queues a frame of leg, given as its headers and payload (copied),
// with its length on the wire. It waits while the queues are full. The
// frame is made ready to write here, on the tap's goroutine while its
// bytes are in the cache, and outside the Recorder's lock: its TCP
// checksum filled in for an in-process tap, its credentials hidden (as
// pftap hides them everywhere: the in-process taps record plaintext below
// TLS). The one goroutine that writes the file is then left with the
// merge, the comments and the writing. Frames of one leg are added by
// one goroutine at a time (each tap is).
func (sw *Recorder) Add(leg int, ts time.Time, head, payload []byte, orig int) {
	sw.AddNoted(leg, ts, head, payload, orig, "")
}

// AddNoted is Add with a note that joins the packet's comment (an agent's
// frame sent without its payload says so).
func (sw *Recorder) AddNoted(leg int, ts time.Time, head, payload []byte, orig int, note string) {
	n := len(head) + len(payload)
	sw.mu.Lock()
	for sw.bytes > writeBudget && !sw.closed {
		sw.cond.Wait()
	}
	if sw.closed || leg >= len(sw.q) {
		sw.mu.Unlock()
		return
	}
	q := &sw.q[leg]
	a := q.arena
	if a == nil || cap(a.buf)-len(a.buf) < n {
		if a != nil {
			a.retired = true
			sw.release(a)
		}
		a = sw.newArena(n)
		q.arena = a
	}
	start := len(a.buf)
	a.buf = a.buf[:start+n]
	data := a.buf[start : start+n : start+n]
	a.users++
	inproc := q.inproc
	sw.bytes += n
	sw.mu.Unlock()

	copy(data[copy(data, head):], payload)
	if inproc {
		tcpframe.FixChecksum(data)
	}
	capture.RedactFrame(data)
	if orig < n {
		orig = n
	}

	sw.mu.Lock()
	q = &sw.q[leg]
	q.frames = append(q.frames, recFrame{ts: ts, data: data, orig: orig, arena: a, note: note})
	sw.mu.Unlock()
}

// newArena returns an arena for frames of n bytes or more, one kept for
// reuse when there is one. sw.mu is held.
func (sw *Recorder) newArena(n int) *arena {
	if k := len(sw.free); k > 0 && n <= arenaSize {
		a := sw.free[k-1]
		sw.free = sw.free[:k-1]
		return a
	}
	sw.arenas++
	return &arena{buf: make([]byte, 0, max(arenaSize, n))}
}

// release keeps a retired arena whose frames are all written for reuse.
// sw.mu is held.
func (sw *Recorder) release(a *arena) {
	if !a.retired || a.users > 0 || cap(a.buf) != arenaSize || len(sw.free) >= maxFreeArenas {
		return
	}
	a.buf, a.retired = a.buf[:0], false
	sw.free = append(sw.free, a)
}

// Start writes the section header (comment) and one interface per leg,
// and starts writing the frames.
func (sw *Recorder) Start(comment string, legs []capture.Leg) error {
	sw.w = capture.NewFileWriter(sw.f, comment)
	// The run loop syncs every writeEvery: a killed run leaves the file
	// as of then, and the file gets a few large writes instead of one a
	// packet.
	sw.w.Gather()
	sw.legs = legs
	var ifs []packet.Interface
	for i, l := range legs {
		if _, err := sw.w.AddLeg(l); err != nil {
			return fmt.Errorf("%s: %w", sw.path, err)
		}
		ifs = append(ifs, packet.Interface{Index: i, Name: l.Name})
	}
	// The header and the legs go to the file now: a file that cannot be
	// written fails here, not at the first sync.
	if err := sw.w.Sync(); err != nil {
		return fmt.Errorf("%s: %w", sw.path, err)
	}
	sw.first, sw.last, sw.count = make([]time.Time, len(legs)), make([]time.Time, len(legs)), make([]uint64, len(legs))
	// Decode as the packets are written: the events a packet completes
	// become its comment.
	sw.dec = decode.NewDecoder(decode.Options{}, func(e *decode.Event) {
		if e.Kind != decode.KindConn {
			sw.texts = append(sw.texts, e.Text)
		}
	})
	sw.dec.SetInterfaces(ifs)
	sw.running = true
	go sw.run()
	return nil
}

// Path is the recording's file.
func (sw *Recorder) Path() string { return sw.path }

func (sw *Recorder) run() {
	defer close(sw.done)
	t := time.NewTicker(writeEvery)
	defer t.Stop()
	for {
		select {
		case <-sw.stop:
			sw.writeUpTo(time.Time{}, true)
			return
		case <-t.C:
			sw.writeUpTo(time.Now().Add(-writeLateness), false)
			// What was written is in the file, readable even if the
			// run is killed now.
			if err := sw.w.Sync(); err != nil {
				sw.mu.Lock()
				if sw.err == nil {
					sw.err = err
				}
				sw.mu.Unlock()
			}
		}
	}
}

// writeUpTo writes, in time order, the queued frames stamped up to before
// (every frame when all).
func (sw *Recorder) writeUpTo(before time.Time, all bool) {
	batch := make([]struct {
		leg int
		f   recFrame
	}, 0, 4096)
	for {
		batch = batch[:0]
		sw.mu.Lock()
		for len(batch) < cap(batch) {
			best := -1
			for i := range sw.q {
				q := &sw.q[i]
				if q.head < len(q.frames) && (best < 0 || q.frames[q.head].ts.Before(sw.q[best].frames[sw.q[best].head].ts)) {
					best = i
				}
			}
			if best < 0 {
				break
			}
			q := &sw.q[best]
			f := q.frames[q.head]
			if !all && f.ts.After(before) {
				break
			}
			q.frames[q.head] = recFrame{}
			q.head++
			if q.head == len(q.frames) {
				q.frames, q.head = q.frames[:0], 0
			}
			batch = append(batch, struct {
				leg int
				f   recFrame
			}{best, f})
		}
		sw.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		freed := 0
		for _, b := range batch {
			freed += len(b.f.data)
			if sw.err == nil {
				sw.err = sw.write(b.leg, b.f)
			}
		}
		sw.mu.Lock()
		for _, b := range batch {
			b.f.arena.users--
			sw.release(b.f.arena)
		}
		sw.bytes -= freed
		sw.cond.Broadcast()
		sw.mu.Unlock()
	}
}

func (sw *Recorder) write(leg int, f recFrame) error {
	sw.texts = sw.texts[:0]
	if packet.Decode(packet.LinkEthernet, f.data, &sw.p) == nil {
		sw.p.Time, sw.p.Interface = f.ts, leg
		sw.dec.Add(&sw.p)
	}
	if sw.first[leg].IsZero() {
		sw.first[leg] = f.ts
	}
	sw.last[leg] = f.ts
	sw.count[leg]++
	sw.packets++
	if f.note != "" {
		sw.texts = append(sw.texts, f.note)
	}
	if err := sw.w.WritePacket(leg, f.ts, f.data, f.orig, strings.Join(sw.texts, "; ")); err != nil {
		return fmt.Errorf("%s: %w", sw.path, err)
	}
	return nil
}

// Finish writes what is still queued, then each leg's statistics (drops,
// and endComment on the first leg's), and closes the file. It returns the
// packets written and the file's size.
//
// notice, when set, is told how many bytes are still queued when that is
// enough to take a moment to write.
func (sw *Recorder) Finish(drops func(leg int) uint64, endComment string, notice func(queued int)) (int64, int64, error) {
	sw.mu.Lock()
	sw.closed = true
	queued := sw.bytes
	sw.cond.Broadcast()
	sw.mu.Unlock()
	if notice != nil && queued >= 16<<20 && sw.w != nil {
		notice(queued)
	}
	if sw.w == nil {
		// The session ended before anything could be recorded.
		sw.f.Close()
		os.Remove(sw.path)
		return 0, 0, nil
	}
	if !sw.running {
		// Start failed: what it wrote stays, nothing more is written.
		return 0, 0, sw.w.Close()
	}
	close(sw.stop)
	<-sw.done
	sw.dec.Finish()
	err := sw.err
	for i := range sw.legs {
		st := capture.LegStats{Start: sw.first[i], End: sw.last[i], Packets: sw.count[i], Drops: drops(i)}
		if i == 0 {
			st.Comment = endComment
		}
		if err == nil {
			err = sw.w.WriteStats(i, st)
		}
	}
	if cerr := sw.w.Close(); err == nil {
		err = cerr
	}
	var size int64
	if fi, serr := os.Stat(sw.path); serr == nil {
		size = fi.Size()
	}
	return sw.packets, size, err
}

// Abandon closes and removes a file nothing was written to.
func (sw *Recorder) Abandon() {
	sw.Finish(func(int) uint64 { return 0 }, "", nil)
}
