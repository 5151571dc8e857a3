package handlers

import (
	"context"
	"sync"
)

// recordLocks serialises the work on each record: PUT replaces a record's whole
// share list, so two read-modify-writes on one record must not interleave, and
// Zoho refuses overlapping work on a record anyway ("Scheduler is running").
// Entries exist only while someone holds or waits for them.
type recordLocks struct {
	mu sync.Mutex
	m  map[string]*recordLock
}

type recordLock struct {
	sem  chan struct{} // capacity 1: holding the token is holding the lock
	refs int           // holders plus waiters; guarded by recordLocks.mu
}

// lock waits for the record's lock or for ctx to end. The returned func unlocks.
func (l *recordLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	rl := l.m[key]
	if rl == nil {
		rl = &recordLock{sem: make(chan struct{}, 1)}
		l.m[key] = rl
	}
	rl.refs++
	l.mu.Unlock()

	select {
	case rl.sem <- struct{}{}:
		return func() {
			<-rl.sem
			l.release(key, rl)
		}, nil
	case <-ctx.Done():
		l.release(key, rl)
		return nil, ctx.Err()
	}
}

func (l *recordLocks) release(key string, rl *recordLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rl.refs--
	if rl.refs == 0 {
		delete(l.m, key)
	}
}
