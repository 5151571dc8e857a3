package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// job is one delivered message from admission to its settlement.
type job struct {
	msg       jetstream.Msg
	md        *jetstream.MsgMetadata
	ev        event.Event
	decodeErr error
	keys      []string
	ctx       context.Context // carries the process span; values only, never canceled
	span      trace.Span
	admitted  time.Time

	blocked int  // lanes in which the job is not yet at the head; guarded by scheduler.mu
	running bool // guarded by scheduler.mu

	mu      sync.Mutex
	settled bool
}

// keepAlive tells the server the message is still being worked on, unless it
// was already settled: an InProgress after the ack would be noise.
func (j *job) keepAlive() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.settled {
		_ = j.msg.InProgress() // best effort: a lost one costs a redelivery, which the ledger absorbs
	}
}

// settle marks the job settled; it returns false if it already was.
func (j *job) settle() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.settled {
		return false
	}
	j.settled = true
	return true
}

// scheduler holds admitted jobs in per-key FIFO lanes. A job is ready when it
// is at the head of every lane it belongs to, so jobs that share a key run in
// admission (stream) order and the rest run in parallel. Admission blocks
// while limit jobs are held, which bounds memory by in-flight work.
type scheduler struct {
	mu     sync.Mutex
	cond   *sync.Cond
	limit  int
	lanes  map[string][]*job
	ready  []*job
	all    map[*job]struct{}
	paused bool
	closed bool
}

func newScheduler(limit int) *scheduler {
	s := &scheduler{limit: limit, lanes: make(map[string][]*job), all: make(map[*job]struct{})}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// add admits j, waiting for room. It returns false without admitting when the
// scheduler is paused or closed.
func (s *scheduler) add(j *job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.all) >= s.limit && !s.paused && !s.closed {
		s.cond.Wait()
	}
	if s.paused || s.closed {
		return false
	}
	s.all[j] = struct{}{}
	for _, k := range j.keys {
		lane := s.lanes[k]
		if len(lane) > 0 {
			j.blocked++
		}
		s.lanes[k] = append(lane, j)
	}
	if j.blocked == 0 {
		s.ready = append(s.ready, j)
		s.cond.Broadcast()
	}
	return true
}

// next returns the next ready job, waiting while there is none or the
// scheduler is paused. It returns nil once the scheduler is closed.
func (s *scheduler) next() *job {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closed && (s.paused || len(s.ready) == 0) {
		s.cond.Wait()
	}
	if s.closed {
		return nil
	}
	j := s.ready[0]
	s.ready[0] = nil
	s.ready = s.ready[1:]
	j.running = true
	return j
}

// done releases j's lanes, making the next job of each lane ready when it
// heads all of its lanes.
func (s *scheduler) done(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.all, j)
	j.running = false
	if !s.closed {
		for _, k := range j.keys {
			lane := s.lanes[k]
			if len(lane) == 0 || lane[0] != j {
				continue // cannot happen: only a lane's head runs
			}
			lane[0] = nil
			lane = lane[1:]
			if len(lane) == 0 {
				delete(s.lanes, k)
				continue
			}
			s.lanes[k] = lane
			if h := lane[0]; h.blocked > 0 {
				h.blocked--
				if h.blocked == 0 {
					s.ready = append(s.ready, h)
				}
			}
		}
	}
	s.cond.Broadcast()
}

// setPaused stops or resumes handing out jobs. While paused, add refuses new
// jobs so the caller can give them back to the server.
func (s *scheduler) setPaused(p bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = p
	s.cond.Broadcast()
}

// close stops the scheduler and returns the admitted jobs that never started,
// in admission order per lane, for the caller to give back. Running jobs
// finish and call done as usual.
func (s *scheduler) close() []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var left []*job
	for j := range s.all {
		if !j.running {
			left = append(left, j)
			delete(s.all, j)
		}
	}
	s.ready = nil
	s.lanes = nil
	s.cond.Broadcast()
	return left
}

// snapshot lists the admitted jobs, for keep-alives.
func (s *scheduler) snapshot() []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*job, 0, len(s.all))
	for j := range s.all {
		out = append(out, j)
	}
	return out
}
