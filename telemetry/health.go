package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxCheckMessage bounds how much of a failing check's error /readyz prints.
const maxCheckMessage = 300

// checkGrace is how long /readyz waits past a check's deadline, so that a
// check that honours its ctx reports its own error rather than "no answer".
const checkGrace = 250 * time.Millisecond

// readiness holds the named checks behind /readyz.
type readiness struct {
	timeout time.Duration

	mu     sync.Mutex
	checks map[string]func(context.Context) error
}

func (rd *readiness) add(name string, fn func(context.Context) error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if fn == nil {
		delete(rd.checks, name)
		return
	}
	rd.checks[name] = fn
}

type checkResult struct {
	name string
	err  error
}

// run calls every check at once under the check timeout and returns the
// results sorted by name. A check that ignores its ctx is reported as giving
// no answer and left to finish on its own; its goroutine writes into a
// buffered channel, so it ends as soon as the check returns.
func (rd *readiness) run(ctx context.Context) []checkResult {
	rd.mu.Lock()
	names := make([]string, 0, len(rd.checks))
	fns := make([]func(context.Context) error, 0, len(rd.checks))
	for name, fn := range rd.checks {
		names = append(names, name)
		fns = append(fns, fn)
	}
	rd.mu.Unlock()

	waitCtx, cancelWait := context.WithTimeout(ctx, rd.timeout+checkGrace)
	defer cancelWait()
	ctx, cancel := context.WithTimeout(waitCtx, rd.timeout)
	defer cancel()
	done := make(chan checkResult, len(names))
	for i := range names {
		go func() {
			done <- checkResult{name: names[i], err: safeCheck(ctx, fns[i])}
		}()
	}
	results := make([]checkResult, 0, len(names))
	pending := make(map[string]bool, len(names))
	for _, n := range names {
		pending[n] = true
	}
wait:
	for len(pending) > 0 {
		select {
		case r := <-done:
			delete(pending, r.name)
			results = append(results, r)
		case <-waitCtx.Done():
			break wait
		}
	}
	for n := range pending {
		results = append(results, checkResult{name: n, err: fmt.Errorf("no answer within %v", rd.timeout)})
	}
	slices.SortFunc(results, func(a, b checkResult) int { return strings.Compare(a.name, b.name) })
	return results
}

// safeCheck turns a panicking check into a failed one rather than a crashed process.
func safeCheck(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v", p)
		}
	}()
	return fn(ctx)
}

// ServeHTTP answers /readyz: 200 when every check passes, else 503. The body
// has one line per check, "ok name" or "fail name: message"; the message is
// scrubbed of credentials and cut short.
func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	results := rd.run(r.Context())
	var b strings.Builder
	status := http.StatusOK
	for _, res := range results {
		if res.err == nil {
			fmt.Fprintf(&b, "ok %s\n", res.name)
			continue
		}
		status = http.StatusServiceUnavailable
		fmt.Fprintf(&b, "fail %s: %s\n", res.name, checkMessage(res.err))
	}
	if len(results) == 0 {
		b.WriteString("ok\n")
	}
	writeText(w, status, b.String())
}

func checkMessage(err error) string {
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "timed out: " + msg
	}
	msg = strings.Join(strings.Fields(scrub(msg)), " ")
	if len(msg) > maxCheckMessage {
		msg = msg[:maxCheckMessage] + "…"
	}
	return msg
}

// healthz answers 200 for as long as the process can serve HTTP at all.
func healthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok\n")
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
