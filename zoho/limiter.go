package zoho

import (
	"context"
	"sync"
	"time"
)

const (
	// minThrottlePause and maxThrottlePause bound the hold after a 429 without
	// Retry-After (Zoho sends none); the pause doubles on each 429 in a row.
	minThrottlePause = 250 * time.Millisecond
	maxThrottlePause = 8 * time.Second
	// maxRetryAfter caps a Retry-After the client will honour by holding requests;
	// a longer one (credits gone for hours) is the caller's to handle.
	maxRetryAfter = 2 * time.Minute
)

// limiter is the client-wide limit on requests in flight (Zoho counts concurrency
// per org and app, and answers 429 beyond it) plus the slow-down after a 429.
type limiter struct {
	slots chan struct{}

	mu         sync.Mutex
	pauseUntil time.Time
	pause      time.Duration // the last pause; 0 after a reply that was not 429
}

func newLimiter(n int) *limiter {
	return &limiter{slots: make(chan struct{}, n)}
}

// acquire takes a slot, then waits out any pause set by a recent 429. When the
// pause outlasts ctx's deadline it fails at once with a 429 *Error, so the caller
// can back off instead of burning its deadline.
func (l *limiter) acquire(ctx context.Context, now func() time.Time) error {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return &Error{Message: "wait for a request slot: " + ctx.Err().Error(), Err: ctx.Err()}
	}
	for {
		l.mu.Lock()
		wait := l.pauseUntil.Sub(now())
		l.mu.Unlock()
		if wait <= 0 {
			return nil
		}
		if d, ok := ctx.Deadline(); ok && d.Before(now().Add(wait)) {
			l.release()
			return &Error{
				Status:     429,
				Code:       "TOO_MANY_REQUESTS",
				Message:    "held back after a recent 429 for longer than the request may wait",
				RetryAfter: wait,
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			l.release()
			return &Error{Message: "wait after a 429: " + ctx.Err().Error(), Err: ctx.Err()}
		}
	}
}

func (l *limiter) release() { <-l.slots }

// throttled records a 429: new requests are held for Retry-After if Zoho gave
// one, else for a pause that grows with each 429 in a row.
func (l *limiter) throttled(now time.Time, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := min(max(2*l.pause, minThrottlePause), maxThrottlePause)
	l.pause = p
	if retryAfter > 0 {
		p = min(retryAfter, maxRetryAfter)
	}
	if until := now.Add(p); until.After(l.pauseUntil) {
		l.pauseUntil = until
	}
}

// ok records a reply that was not a 429, so the next pause starts small again.
func (l *limiter) ok() {
	l.mu.Lock()
	l.pause = 0
	l.mu.Unlock()
}
