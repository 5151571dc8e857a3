package zohoemu

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serveCRM runs one CRM call through Zoho's gates in order: URL, token,
// concurrency and credits, latency, faults that strike before the call, the
// call itself, and faults that strike after a write was applied.
func (e *Emulator) serveCRM(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/crm/"), "/")
	d, ok := parseDialect(parts[0])
	var pattern string
	isShare := false
	switch {
	case !ok:
	case len(parts) == 2 && parts[1] == "users":
		pattern = "/crm/" + parts[0] + "/users"
	case len(parts) == 5 && parts[1] != "" && parts[2] != "" && parts[3] == "actions" && parts[4] == "share":
		pattern = "/crm/" + parts[0] + "/{module}/{record_id}/actions/share"
		isShare = true
	}
	if pattern == "" {
		rp := errorReply(http.StatusNotFound, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one.", nil)
		e.record(r, "/crm/other", rp)
		rp.write(w)
		return
	}
	send := func(rp *reply) {
		if rp.drop {
			e.record(r, pattern, nil)
			drop(w)
			return
		}
		e.record(r, pattern, rp)
		rp.write(w)
	}

	tok, rp := e.authenticate(r)
	if rp != nil {
		send(rp)
		return
	}
	release, rp := e.admit()
	if rp != nil {
		send(rp)
		return
	}
	defer release()
	isWrite := isShare && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodDelete)
	delay, rp := e.beforeFault(r, pattern, isWrite)
	if !sleep(r.Context(), e.latency()+delay) {
		return // the caller went away
	}
	if rp != nil {
		send(rp)
		return
	}

	e.mu.Lock()
	if isShare {
		rp = e.serveShare(d, r, tok, parts[1], parts[2])
	} else {
		rp = e.serveUsers(r, tok)
	}
	if remaining, ok := e.creditsHeader(); ok {
		if rp.header == nil {
			rp.header = map[string]string{}
		}
		rp.header["X-API-CREDITS-REMAINING"] = remaining
	}
	e.mu.Unlock()

	if isWrite {
		if f := e.afterFault(r, pattern, d); f != nil {
			f.applied = rp.applied
			rp = f
		}
	}
	send(rp)
}

// admit takes a concurrency slot and a credit, or returns the 429.
func (e *Emulator) admit() (release func(), rp *reply) {
	e.mu.Lock()
	defer e.mu.Unlock()
	limit := e.cfg.ConcurrencyLimit
	if limit == 0 {
		limit = e.org.ConcurrencyLimit
	}
	if limit > 0 && e.inFlight >= limit {
		return nil, tooManyRequests()
	}
	now := e.cfg.Now()
	if e.creditWindow.IsZero() || now.Sub(e.creditWindow) >= 24*time.Hour {
		e.creditWindow, e.creditsUsed = now, 0
	}
	if e.org.DailyCredits > 0 && e.creditsUsed >= e.org.DailyCredits {
		return nil, tooManyRequests()
	}
	e.creditsUsed++
	e.inFlight++
	return func() {
		e.mu.Lock()
		e.inFlight--
		e.mu.Unlock()
	}, nil
}

func tooManyRequests() *reply {
	return errorReply(http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "Too many requests", nil)
}

// creditsHeader is X-API-CREDITS-REMAINING, which Zoho sends only once half of
// the day's credits are used.
func (e *Emulator) creditsHeader() (string, bool) {
	if e.org.DailyCredits <= 0 || e.creditsUsed*2 < e.org.DailyCredits {
		return "", false
	}
	return strconv.Itoa(e.org.DailyCredits - e.creditsUsed), true
}

// latency is the configured base latency plus the faults' extra latency, with jitter.
func (e *Emulator) latency() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.cfg.Latency + time.Duration(e.faults.Latency)
	if j := e.cfg.Jitter + time.Duration(e.faults.Jitter); j > 0 {
		d += time.Duration(e.rng.Int64N(int64(j) + 1))
	}
	return d
}

// sleep waits for d or until ctx ends, reporting whether the full wait happened.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// drop closes the connection without a reply, as a network fault would.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// net/http closes the connection without a reply when a handler aborts
	// with ErrAbortHandler (HTTP/2, or a writer that cannot hijack).
	panic(http.ErrAbortHandler)
}
