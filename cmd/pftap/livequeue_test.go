package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestMergeQueuesOrderAndBackpressure: three legs written concurrently, one
// with frames bigger than a chunk, through queues of two chunks (so the
// writers wait for the reader): every frame arrives once, intact, legs in
// their own order, and all in time order across legs (frames are stamped
// when pushed, as the taps do: a frame that reached its queue more than
// liveLateness after its stamp could come out of order).
func TestMergeQueuesOrderAndBackpressure(t *testing.T) {
	notify := make(chan struct{}, 1)
	ended := make(chan struct{})
	qs := []*frameQueue{newFrameQueue(2, notify), newFrameQueue(2, notify), newFrameQueue(2, notify)}
	const perLeg = 300
	var wg sync.WaitGroup
	for leg, q := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perLeg; i++ {
				size := 1000 + i*97%60000
				if leg == 2 && i%50 == 0 {
					size = queueChunk + 12345 // larger than a chunk
				}
				head := make([]byte, 8)
				binary.BigEndian.PutUint32(head, uint32(leg))
				binary.BigEndian.PutUint32(head[4:], uint32(i))
				payload := bytes.Repeat([]byte{byte(leg*31 + i)}, size)
				q.push(time.Now(), head, payload, 0) // stamped as a tap stamps
			}
		}()
	}
	go func() {
		wg.Wait()
		for _, q := range qs {
			q.close()
		}
		close(ended)
	}()
	next := make([]int, len(qs))
	var last time.Time
	err := mergeQueues(qs, notify, ended, func(leg int, ts time.Time, data []byte, orig int) error {
		if ts.Before(last) {
			t.Errorf("leg %d frame at %v after one at %v", leg, ts, last)
		}
		last = ts
		gotLeg, i := int(binary.BigEndian.Uint32(data)), int(binary.BigEndian.Uint32(data[4:]))
		if gotLeg != leg || i != next[leg] {
			t.Fatalf("leg %d: frame %d of leg %d, want frame %d", leg, i, gotLeg, next[leg])
		}
		next[leg]++
		if orig != len(data) || data[len(data)-1] != byte(leg*31+i) {
			t.Fatalf("leg %d frame %d: %d bytes (orig %d), damaged", leg, i, len(data), orig)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for leg, n := range next {
		if n != perLeg {
			t.Errorf("leg %d: %d frames, want %d", leg, n, perLeg)
		}
	}
}

// TestMergeQueuesWaitsForLateFrames: a fresh frame is held until it is
// liveLateness old, so that an older frame of another leg that arrives in
// the meantime goes first.
func TestMergeQueuesWaitsForLateFrames(t *testing.T) {
	notify := make(chan struct{}, 1)
	ended := make(chan struct{})
	a, b := newFrameQueue(4, notify), newFrameQueue(4, notify)
	now := time.Now()
	a.push(now, []byte("second"), nil, 0)
	go func() {
		time.Sleep(liveLateness / 5)
		b.push(now.Add(-time.Millisecond), []byte("first"), nil, 0) // delivered late, stamped earlier
		time.Sleep(2 * liveLateness)
		a.close()
		b.close()
		close(ended)
	}()
	var got []string
	mergeQueues([]*frameQueue{a, b}, notify, ended, func(leg int, ts time.Time, data []byte, orig int) error {
		got = append(got, string(data))
		return nil
	})
	if len(got) != 2 || got[0] != "first" {
		t.Errorf("got %q, want first then second", got)
	}
}

// TestMergeQueuesAbortReleasesWriters: when the reader fails, writers
// blocked on a full queue go on (dropping) and the error comes back.
func TestMergeQueuesAbortReleasesWriters(t *testing.T) {
	notify := make(chan struct{}, 1)
	ended := make(chan struct{})
	q := newFrameQueue(1, notify)
	old := time.Now().Add(-time.Hour)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 100; i++ {
			q.push(old, make([]byte, 300<<10), nil, 0) // a chunk holds three
		}
		close(done)
	}()
	boom := errors.New("reader failed")
	err := mergeQueues([]*frameQueue{q}, notify, ended, func(int, time.Time, []byte, int) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a writer is still blocked after the reader failed")
	}
}
