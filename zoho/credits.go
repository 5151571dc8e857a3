package zoho

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// creditsGoneAfter is how long Zoho may answer nothing but 429 before the
// client takes the day's API credits for used up. Zoho's 429 body is the same
// for too many calls at once and for no credits left; a concurrency 429 passes
// within seconds, a credits one lasts until the 24-hour window turns.
const creditsGoneAfter = 2 * time.Minute

// creditWatch follows X-API-CREDITS-REMAINING (sent once half of the day's
// credits are used) and runs of 429s, to tell a 429 for lack of credits from
// one for too many calls at once.
type creditWatch struct {
	lowMark int // remaining credits at or below which a 429 means none are left

	mu             sync.Mutex
	remaining      int       // the last X-API-CREDITS-REMAINING; -1 before any
	seenAt         time.Time // when it was read
	throttledSince time.Time // the first 429 of the current run; zero after any other reply
	gone           bool      // the last reply was a 429 judged to be for lack of credits
}

func newCreditWatch(maxConcurrency int) *creditWatch {
	return &creditWatch{lowMark: maxConcurrency, remaining: -1}
}

// observe records a reply and reports whether it is a 429 for lack of
// credits: the last count Zoho sent (within the day) left no more than one
// call per concurrency slot, or Zoho has answered only 429 for
// creditsGoneAfter.
func (w *creditWatch) observe(now time.Time, status int, h http.Header) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if v := h.Get("X-API-CREDITS-REMAINING"); v != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
			w.remaining, w.seenAt = n, now
		}
	} else if status != http.StatusTooManyRequests {
		// Zoho sends the count on every reply once half the day's credits
		// are used: an answer without it means a new day.
		w.remaining = -1
	}
	if status != http.StatusTooManyRequests {
		w.throttledSince, w.gone = time.Time{}, false
		return false
	}
	if w.throttledSince.IsZero() {
		w.throttledSince = now
	}
	low := w.remaining >= 0 && w.remaining <= w.lowMark && now.Sub(w.seenAt) < 24*time.Hour
	w.gone = low || now.Sub(w.throttledSince) >= creditsGoneAfter
	return w.gone
}

// exhausted reports whether the last reply was a 429 for lack of credits.
func (w *creditWatch) exhausted() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone
}
