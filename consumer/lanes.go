package consumer

import (
	"context"
	"slices"
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
	plan      func(context.Context) context.Context // from the Planner, if any
	key       string                                // EventKey, when decoded
	lookup    *ledgerLookup                         // the ledger read started on arrival
	seq       uint64                                // stream sequence: lanes are ordered by it
	ctx       context.Context                       // carries the process span; values only, never canceled
	span      trace.Span
	admitted  time.Time

	running bool // guarded by scheduler.mu
	queued  bool // in scheduler.ready; guarded by scheduler.mu

	// fenceFor is set by settle when the job was naked for a retry: its keys
	// are fenced for that long. Written and read by the job's worker only.
	fenceFor time.Duration

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

// fence keeps the events behind a naked one from overtaking its redelivery:
// jobs of the key with a higher stream sequence wait until the fenced event
// settles for good, or until the fence expires (another replica may have
// taken the redelivery).
type fence struct {
	seq   uint64
	until time.Time
	dur   time.Duration // renewed in full after a pause
}

// admission is what add did with a job.
type admission int

const (
	admitted admission = iota + 1
	// refused: paused or closed; give the message back.
	refused
	// overflow: the job would wait behind a fence while too many already
	// do; give it back with the returned delay (its keys are fenced).
	overflow
)

// scheduler holds admitted jobs in per-key lanes ordered by stream sequence.
// A job is ready when it heads every lane it belongs to and no fence on its
// keys holds an earlier event, so jobs that share a key run in stream order,
// also across a nak and its redelivery, and the rest run in parallel.
//
// Admission blocks while limit jobs that can run are held, which bounds
// memory by in-flight work. Jobs held behind a fence do not count, so a
// fenced event's redelivery is always admitted (the server sends
// redeliveries past MaxAckPending); at most heldCap jobs are held, later ones
// go back to the server so a fenced record cannot take every slot.
type scheduler struct {
	mu       sync.Mutex
	cond     *sync.Cond
	limit    int
	heldCap  int
	maxBatch int
	extra    time.Duration // a fence lasts the nak delay plus this
	lanes    map[string][]*job
	fences   map[string][]fence
	ready    []*job
	all      map[*job]struct{}
	timer    *time.Timer // wakes the scheduler when the earliest fence expires
	timerAt  time.Time
	paused   bool
	closed   bool
	now      func() time.Time
}

// newScheduler returns a scheduler admitting limit runnable jobs, handing
// out runs of up to maxBatch jobs of one lane, whose fences outlast a nak
// delay by extra.
func newScheduler(limit, maxBatch int, extra time.Duration) *scheduler {
	s := &scheduler{
		limit:    limit,
		extra:    extra,
		heldCap:  max(1, limit/2),
		maxBatch: max(1, maxBatch),
		lanes:    make(map[string][]*job),
		fences:   make(map[string][]fence),
		all:      make(map[*job]struct{}),
		now:      time.Now,
	}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// fencedBy returns the active fence on key k that holds j, if any.
func (s *scheduler) fencedBy(j *job, k string, now time.Time) (fence, bool) {
	for _, f := range s.fences[k] {
		if f.seq < j.seq && now.Before(f.until) {
			return f, true
		}
	}
	return fence{}, false
}

func (s *scheduler) fenced(j *job, now time.Time) bool {
	for _, k := range j.keys {
		if _, ok := s.fencedBy(j, k, now); ok {
			return true
		}
	}
	return false
}

// isReady reports whether j may start now.
func (s *scheduler) isReady(j *job, now time.Time) bool {
	if j.running {
		return false
	}
	if _, ok := s.all[j]; !ok {
		return false
	}
	for _, k := range j.keys {
		if lane := s.lanes[k]; len(lane) == 0 || lane[0] != j {
			return false
		}
	}
	return !s.fenced(j, now)
}

// held counts the admitted jobs that wait behind a fence.
func (s *scheduler) held(now time.Time) int {
	if len(s.fences) == 0 {
		return 0
	}
	n := 0
	seen := make(map[*job]bool)
	for k := range s.fences {
		for _, j := range s.lanes[k] {
			if !j.running && !seen[j] {
				if _, ok := s.fencedBy(j, k, now); ok {
					seen[j] = true
					n++
				}
			}
		}
	}
	return n
}

// wakeHead queues the head of k's lane when it became ready.
func (s *scheduler) wakeHead(k string, now time.Time) {
	lane := s.lanes[k]
	if len(lane) == 0 {
		return
	}
	if h := lane[0]; !h.queued && s.isReady(h, now) {
		h.queued = true
		s.ready = append(s.ready, h)
	}
}

// add admits j, waiting for room. It refuses j when the scheduler is paused
// or closed. It gives j back with a delay (overflow) when j would wait behind
// a fence while heldCap jobs already do, unless last is true (the server
// would drop a nak of the message's last allowed delivery).
func (s *scheduler) add(j *job, last bool) (admission, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.paused && !s.closed && len(s.all)-s.held(s.now()) >= s.limit {
		s.cond.Wait()
	}
	if s.paused || s.closed {
		return refused, 0
	}
	now := s.now()
	if !last && s.fenced(j, now) && s.held(now) >= s.heldCap {
		// Come back a little after the fenced event's redelivery is due.
		var wait time.Duration
		for _, k := range j.keys {
			if f, ok := s.fencedBy(j, k, now); ok {
				wait = max(wait, f.until.Sub(now)-s.extra)
			}
		}
		wait = max(wait, 0) + time.Second
		// Later events of these keys must not overtake this one either.
		s.setFence(j, wait+s.extra, now)
		return overflow, wait
	}
	s.all[j] = struct{}{}
	for _, k := range j.keys {
		lane := s.lanes[k]
		i, _ := slices.BinarySearchFunc(lane, j.seq, func(x *job, seq uint64) int {
			switch {
			case x.seq < seq:
				return -1
			case x.seq > seq:
				return 1
			}
			return 0
		})
		// Never in front of a running head: it has started already.
		if i == 0 && len(lane) > 0 && lane[0].running {
			i = 1
		}
		s.lanes[k] = slices.Insert(lane, i, j)
	}
	if len(j.keys) == 0 {
		j.queued = true
		s.ready = append(s.ready, j)
	} else {
		for _, k := range j.keys {
			s.wakeHead(k, now)
		}
	}
	s.cond.Broadcast()
	return admitted, 0
}

// next returns the next ready job, plus the jobs waiting right behind it in
// its one lane that may be handled together with it (up to maxBatch in all),
// waiting while there is none or the scheduler is paused. It returns nil once
// the scheduler is closed.
func (s *scheduler) next() []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for !s.closed && (s.paused || len(s.ready) == 0) {
			s.cond.Wait()
		}
		if s.closed {
			return nil
		}
		j := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		j.queued = false
		now := s.now()
		if !s.isReady(j, now) {
			continue // overtaken by an earlier redelivery, or fenced since
		}
		j.running = true
		batch := []*job{j}
		if s.maxBatch > 1 && len(j.keys) == 1 && j.decodeErr == nil {
			lane := s.lanes[j.keys[0]]
			for _, x := range lane[1:] {
				if len(batch) == s.maxBatch || x.running || len(x.keys) != 1 || x.decodeErr != nil || s.fenced(x, now) {
					break
				}
				x.running = true
				batch = append(batch, x)
			}
		}
		return batch
	}
}

// setFence fences j's keys for d from now, replacing a fence of j's own.
func (s *scheduler) setFence(j *job, d time.Duration, now time.Time) {
	f := fence{seq: j.seq, until: now.Add(d), dur: d}
	for _, k := range j.keys {
		fs := slices.DeleteFunc(s.fences[k], func(x fence) bool { return x.seq == j.seq || !now.Before(x.until) })
		s.fences[k] = append(fs, f)
	}
	s.armTimer(f.until, now)
}

// armTimer makes sure the scheduler wakes at t to release expired fences.
func (s *scheduler) armTimer(t, now time.Time) {
	if s.closed || (s.timer != nil && !s.timerAt.IsZero() && !t.Before(s.timerAt)) {
		return
	}
	s.timerAt = t
	if s.timer == nil {
		s.timer = time.AfterFunc(t.Sub(now), s.expire)
		return
	}
	s.timer.Reset(t.Sub(now))
}

// expire drops expired fences and readies what they held.
func (s *scheduler) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timerAt = time.Time{}
	if s.closed {
		return
	}
	now := s.now()
	var next time.Time
	for k, fs := range s.fences {
		fs = slices.DeleteFunc(fs, func(f fence) bool { return !now.Before(f.until) })
		if len(fs) == 0 {
			delete(s.fences, k)
		} else {
			s.fences[k] = fs
			for _, f := range fs {
				if next.IsZero() || f.until.Before(next) {
					next = f.until
				}
			}
		}
		s.wakeHead(k, now)
	}
	if !next.IsZero() {
		s.armTimer(next, now)
	}
	s.cond.Broadcast()
}

// done releases j's lanes after it settled. A job naked for a retry
// (fenceFor > 0) fences its keys; one that settled for good lifts its own
// fence. The next job of each lane becomes ready when it heads all of its
// lanes and is not fenced.
func (s *scheduler) done(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.all, j)
	j.running = false
	if s.closed {
		s.cond.Broadcast()
		return
	}
	now := s.now()
	for _, k := range j.keys {
		lane := slices.DeleteFunc(s.lanes[k], func(x *job) bool { return x == j })
		if len(lane) == 0 {
			delete(s.lanes, k)
		} else {
			s.lanes[k] = lane
		}
	}
	if j.fenceFor > 0 {
		s.setFence(j, j.fenceFor, now)
	} else {
		for _, k := range j.keys {
			fs := slices.DeleteFunc(s.fences[k], func(f fence) bool { return f.seq == j.seq || !now.Before(f.until) })
			if len(fs) == 0 {
				delete(s.fences, k)
			} else {
				s.fences[k] = fs
			}
		}
	}
	for _, k := range j.keys {
		s.wakeHead(k, now)
	}
	s.cond.Broadcast()
}

// requeue puts jobs taken by next back in their lanes unsettled: the handler
// deferred them behind an earlier event of the batch. Once the scheduler is
// closed it keeps nothing and returns the jobs for the caller to give back.
func (s *scheduler) requeue(jobs ...*job) []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		for _, j := range jobs {
			delete(s.all, j)
			j.running = false
		}
		s.cond.Broadcast()
		return jobs
	}
	now := s.now()
	for _, j := range jobs {
		j.running = false
	}
	for _, j := range jobs {
		for _, k := range j.keys {
			s.wakeHead(k, now)
		}
	}
	s.cond.Broadcast()
	return nil
}

// setPaused stops or resumes handing out jobs. While paused, add refuses new
// jobs so the caller can give them back to the server. On resume the fences
// start over: a fenced event's redelivery waited through the pause too.
func (s *scheduler) setPaused(p bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused && !p {
		now := s.now()
		for k, fs := range s.fences {
			for i := range fs {
				fs[i].until = now.Add(fs[i].dur)
			}
			s.fences[k] = fs
			for _, f := range fs {
				s.armTimer(f.until, now)
			}
		}
	}
	s.paused = p
	s.cond.Broadcast()
}

// close stops the scheduler and returns the admitted jobs that never started,
// for the caller to give back. Running jobs finish and call done as usual.
func (s *scheduler) close() []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	var left []*job
	for j := range s.all {
		if !j.running {
			left = append(left, j)
			delete(s.all, j)
		}
	}
	slices.SortFunc(left, func(a, b *job) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
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
