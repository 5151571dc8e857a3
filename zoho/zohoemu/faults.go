package zohoemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("150ms"); a bare JSON number is taken as milliseconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "150ms" or 150 (milliseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"150ms\" or milliseconds", b)
	}
	*d = Duration(ms * float64(time.Millisecond))
	return nil
}

// Faults is the fault injection plan. The zero value injects nothing. Given the
// same Seed and the same sequence of requests, the same faults strike.
type Faults struct {
	// Seed seeds the random source behind Rate and jitter; 0 means 1.
	Seed uint64 `json:"seed,omitempty"`
	// Latency and Jitter are added to every CRM call, on top of Config's.
	Latency Duration `json:"latency,omitempty"`
	Jitter  Duration `json:"jitter,omitempty"`
	// SchedulerWindow: after a write changed a record, further writes to that
	// record inside this window fail with CANNOT_PROCESS "Scheduler is running"
	// (v8 403, v2/v2.1 400). Zero means off.
	SchedulerWindow Duration `json:"scheduler_window,omitempty"`
	// Rules are checked in order for every request they match; the first error
	// or drop rule that strikes decides the reply, and every delay rule that
	// strikes before it adds its delay.
	Rules []Fault `json:"rules,omitempty"`
}

// Fault is one fault rule.
type Fault struct {
	// Kind is "error" (the default), "drop" (close the connection without a
	// reply) or "delay" (wait Delay, then carry on).
	Kind string `json:"kind,omitempty"`
	// Code is the Zoho code of an error reply, e.g. "INTERNAL_ERROR" (500),
	// "TOO_MANY_REQUESTS" (429), "INVALID_TOKEN" (401), "CANNOT_PROCESS"
	// (Scheduler is running), "SHARE_LIMIT_EXCEEDED" (403). Known codes bring
	// their documented status and message. Empty Code with a Status sends a
	// plain-text body, like a proxy's 502.
	Code    string `json:"code,omitempty"`
	Status  int    `json:"status,omitempty"`  // overrides the code's status
	Message string `json:"message,omitempty"` // overrides the code's message
	// RetryAfter, when set, adds a Retry-After header (whole seconds, rounded up).
	RetryAfter Duration `json:"retry_after,omitempty"`
	// Delay is how long a delay rule waits.
	Delay Duration `json:"delay,omitempty"`
	// Rate is the chance (0..1) that the rule strikes a matching request.
	Rate float64 `json:"rate,omitempty"`
	// Skip lets the first Skip matching requests through untouched.
	Skip int `json:"skip,omitempty"`
	// Count makes the rule strike the next Count matching requests (after Skip)
	// for certain; after those, Rate applies.
	Count int `json:"count,omitempty"`
	// Burst: once the rule strikes by Rate, it also strikes the next Burst-1
	// matching requests (a burst of 429s, say).
	Burst int `json:"burst,omitempty"`
	// After makes an error or drop strike after the write was applied: the
	// caller sees a failure but the change happened (unknown outcome). After
	// rules match only share writes (POST, PUT, DELETE).
	After bool `json:"after,omitempty"`
	// Methods restricts the rule to these HTTP methods; empty means all.
	Methods []string `json:"methods,omitempty"`
	// Paths restricts the rule to request paths containing one of these
	// strings (e.g. "/actions/share", "/Deals/", "/users", "/oauth/v2/token").
	// Empty means every CRM call; token calls are matched only when named here.
	Paths []string `json:"paths,omitempty"`
}

type ruleState struct {
	seen, struck, burstLeft int
}

// Validate reports every problem in the plan.
func (f Faults) Validate() error {
	var errs []error
	if f.Latency < 0 || f.Jitter < 0 || f.SchedulerWindow < 0 {
		errs = append(errs, errors.New("latency, jitter and scheduler_window must not be negative"))
	}
	for i, r := range f.Rules {
		switch r.Kind {
		case "", "error":
			if r.Code == "" && r.Status == 0 {
				errs = append(errs, fmt.Errorf("rules[%d]: an error needs a code or a status", i))
			}
			if r.Status != 0 && (r.Status < 400 || r.Status > 599) {
				errs = append(errs, fmt.Errorf("rules[%d]: status %d is not an error status", i, r.Status))
			}
		case "drop":
		case "delay":
			if r.Delay <= 0 {
				errs = append(errs, fmt.Errorf("rules[%d]: a delay needs a positive delay", i))
			}
			if r.After {
				errs = append(errs, fmt.Errorf("rules[%d]: a delay cannot strike after", i))
			}
		default:
			errs = append(errs, fmt.Errorf("rules[%d]: kind %q (want error, drop or delay)", i, r.Kind))
		}
		if r.Rate < 0 || r.Rate > 1 {
			errs = append(errs, fmt.Errorf("rules[%d]: rate %v is outside 0..1", i, r.Rate))
		}
		if r.Skip < 0 || r.Count < 0 || r.Burst < 0 {
			errs = append(errs, fmt.Errorf("rules[%d]: skip, count and burst must not be negative", i))
		}
		if r.Rate == 0 && r.Count == 0 {
			errs = append(errs, fmt.Errorf("rules[%d]: set rate or count, or the rule never strikes", i))
		}
	}
	return errors.Join(errs...)
}

// SetFaults replaces the fault plan and restarts its random source and rule
// counters. Faults{} clears every fault. Check a plan built from input with
// Faults.Validate first: rules it would refuse are ignored here.
func (e *Emulator) SetFaults(f Faults) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resetFaults(f)
}

// CurrentFaults returns the fault plan in force.
func (e *Emulator) CurrentFaults() Faults {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.faults
	f.Rules = slices.Clone(f.Rules)
	return f
}

func (e *Emulator) resetFaults(f Faults) {
	f.Rules = slices.Clone(f.Rules)
	e.faults = f
	e.ruleState = make([]ruleState, len(f.Rules))
	seed := f.Seed
	if seed == 0 {
		seed = 1
	}
	e.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func (f *Fault) matches(r *http.Request) bool {
	if len(f.Methods) > 0 && !slices.ContainsFunc(f.Methods, func(m string) bool { return strings.EqualFold(m, r.Method) }) {
		return false
	}
	if len(f.Paths) == 0 {
		return strings.HasPrefix(r.URL.Path, "/crm/")
	}
	return slices.ContainsFunc(f.Paths, func(p string) bool { return p != "" && strings.Contains(r.URL.Path, p) })
}

// strikes advances rule i's counters for a matching request and reports
// whether it strikes. It runs under the lock.
func (e *Emulator) strikes(i int) bool {
	f, st := &e.faults.Rules[i], &e.ruleState[i]
	st.seen++
	switch {
	case st.seen <= f.Skip:
		return false
	case st.struck < f.Count:
		st.struck++
		return true
	case st.burstLeft > 0:
		st.burstLeft--
		return true
	case f.Rate > 0 && e.rng.Float64() < f.Rate:
		st.burstLeft = max(f.Burst-1, 0)
		return true
	}
	return false
}

// beforeFault picks what strikes a request before it is handled: the total
// delay of delay rules, and the error or drop reply if one strikes.
func (e *Emulator) beforeFault(r *http.Request, pattern string, isWrite bool) (time.Duration, *reply) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var delay time.Duration
	for i := range e.faults.Rules {
		f := &e.faults.Rules[i]
		if f.After || !f.matches(r) || !validRule(f) {
			continue
		}
		if !e.strikes(i) {
			continue
		}
		if f.Kind == "delay" {
			delay += time.Duration(f.Delay)
			continue
		}
		return delay, faultReply(f, dialectFromPattern(pattern))
	}
	return delay, nil
}

// afterFault picks an error or drop that strikes a share write after it was applied.
func (e *Emulator) afterFault(r *http.Request, pattern string, d dialect) *reply {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.faults.Rules {
		f := &e.faults.Rules[i]
		if !f.After || f.Kind == "delay" || !f.matches(r) || !validRule(f) {
			continue
		}
		if e.strikes(i) {
			return faultReply(f, d)
		}
	}
	return nil
}

func validRule(f *Fault) bool {
	switch f.Kind {
	case "", "error":
		return f.Code != "" || f.Status != 0
	case "drop":
		return true
	case "delay":
		return f.Delay > 0
	}
	return false
}

func dialectFromPattern(pattern string) dialect {
	parts := strings.Split(strings.TrimPrefix(pattern, "/crm/"), "/")
	d, _ := parseDialect(parts[0])
	return d
}

// faultReply builds the reply a fault sends.
func faultReply(f *Fault, d dialect) *reply {
	if f.Kind == "drop" {
		return &reply{drop: true}
	}
	status, msg := f.Status, f.Message
	var defStatus int
	var defMsg string
	switch f.Code {
	case "INTERNAL_ERROR":
		defStatus, defMsg = http.StatusInternalServerError, "Internal Server Error"
	case "INTERNAL_SERVER_ERROR":
		defStatus, defMsg = http.StatusInternalServerError, "Internal server error occurred."
	case "TOO_MANY_REQUESTS":
		defStatus, defMsg = http.StatusTooManyRequests, "Too many requests"
	case "INVALID_TOKEN":
		defStatus, defMsg = http.StatusUnauthorized, "invalid oauth token"
	case "AUTHENTICATION_FAILURE":
		defStatus, defMsg = http.StatusUnauthorized, "Authentication failed"
	case "OAUTH_SCOPE_MISMATCH":
		defStatus, defMsg = http.StatusUnauthorized, "invalid oauth scope to access this URL"
	case "CANNOT_PROCESS":
		defStatus, defMsg = http.StatusBadRequest, "Scheduler is running"
		if d == dialectV8 {
			defStatus = http.StatusForbidden
		}
	case "SHARE_LIMIT_EXCEEDED":
		defStatus, defMsg = http.StatusForbidden, "The record sharing limit has been reached"
		if d == dialectV21 {
			defMsg = "The record sharing has reached its limit"
		}
	case "NO_PERMISSION":
		defStatus, defMsg = http.StatusForbidden, "Permission denied to share records"
	case "":
		defStatus = http.StatusServiceUnavailable
	default:
		defStatus, defMsg = http.StatusBadRequest, "invalid data"
	}
	if status == 0 {
		status = defStatus
	}
	if msg == "" {
		msg = defMsg
	}
	var rp *reply
	if f.Code == "" {
		if msg == "" {
			msg = http.StatusText(status)
		}
		rp = &reply{status: status, raw: msg}
	} else {
		rp = errorReply(status, f.Code, msg, nil)
	}
	rp.retryAfter = time.Duration(f.RetryAfter)
	return rp
}
