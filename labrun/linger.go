package labrun

import (
	"io"
	"sync"
	"time"

	"github.com/pftap/pftap/capture"
)

// lingerFor bounds how long a closed user connection waits for its peer's
// FIN.
const lingerFor = 2 * time.Second

// lingerConn closes as a socket does, which the kernel keeps open for its
// peer's FIN: Close sends this end's FIN and returns, and the peer's last
// bytes and FIN are still read, so that the tap under it records them as a
// capture of the connection would, for at most lingerFor; then the
// connection is closed.
type lingerConn struct {
	*capture.Tap
	set  *lingerSet
	once sync.Once
}

// lingerSet tracks the lingering connections so that the session waits for
// them; once it waits, connections close at once.
type lingerSet struct {
	mu      sync.Mutex
	wg      sync.WaitGroup
	waiting bool
	conns   map[*lingerConn]bool
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		err := c.Tap.CloseWrite()
		c.set.mu.Lock()
		linger := err == nil && !c.set.waiting
		if linger {
			c.set.wg.Add(1)
		}
		c.set.mu.Unlock()
		if !linger {
			c.Tap.Close()
			return
		}
		c.set.mu.Lock()
		if c.set.conns == nil {
			c.set.conns = map[*lingerConn]bool{}
		}
		c.set.conns[c] = true
		c.Tap.SetReadDeadline(time.Now().Add(lingerFor))
		c.set.mu.Unlock()
		go func() {
			defer c.set.wg.Done()
			io.Copy(io.Discard, c.Tap)
			c.set.mu.Lock()
			delete(c.set.conns, c)
			c.set.mu.Unlock()
			c.Tap.Close()
		}()
	})
	return nil
}

// wait waits for the lingering connections (at most lingerFor).
func (s *lingerSet) wait() {
	s.mu.Lock()
	s.waiting = true
	s.mu.Unlock()
	s.wg.Wait()
}

// cut ends every lingering connection now, and makes connections closed
// from now on close at once (the user stopped the session).
func (s *lingerSet) cut() {
	s.mu.Lock()
	s.waiting = true
	for c := range s.conns {
		c.Tap.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
}
