package zohoemu

import (
	"maps"
	"net/http"
	"strconv"
	"time"
)

// RequestStats counts the requests the emulator answered (admin calls excluded).
type RequestStats struct {
	Total int `json:"total"`
	// ByMethod counts requests by HTTP method.
	ByMethod map[string]int `json:"by_method"`
	// ByRoute counts requests by "METHOD pattern status", e.g.
	// "POST /crm/v8/{module}/{record_id}/actions/share 201",
	// "GET /crm/v2/users 200", "POST /oauth/v2/token 200". A dropped connection
	// has status 0.
	ByRoute map[string]int `json:"by_route"`
	// ByCode counts Zoho codes in replies ("SUCCESS", "INVALID_TOKEN", …; a
	// share array counts its first error, else SUCCESS; "DROPPED" for a dropped
	// connection; the token endpoint's "error" value).
	ByCode map[string]int `json:"by_code"`
	// TooManyRequests counts 429 replies.
	TooManyRequests int `json:"too_many_requests"`
	// Writes counts POST, PUT and DELETE share calls that reached the share
	// handler, whatever their outcome.
	Writes int `json:"writes"`
	// AppliedWrites counts the share writes that changed the org, including
	// those whose reply a fault then replaced or dropped.
	AppliedWrites int `json:"applied_writes"`
	// TokenRefreshes counts access tokens minted.
	TokenRefreshes int `json:"token_refreshes"`
	// Recent lists the latest requests, oldest first.
	Recent []RequestLog `json:"recent"`
}

// RequestLog is one answered request.
type RequestLog struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"` // 0 for a dropped connection
	Code   string    `json:"code,omitempty"`
}

type statsState struct {
	total, tooMany, writes, applied int
	byMethod, byRoute, byCode       map[string]int
	// recent is a ring of the last RecentRequests requests; next is where
	// the next one goes once it is full.
	recent []RequestLog
	next   int
}

// record counts one answered request; pattern is its path pattern.
func (e *Emulator) record(r *http.Request, pattern string, rp *reply) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recordLocked(r, pattern, rp)
}

func (e *Emulator) recordLocked(r *http.Request, pattern string, rp *reply) {
	s := &e.stats
	if s.byMethod == nil {
		s.byMethod, s.byRoute, s.byCode = map[string]int{}, map[string]int{}, map[string]int{}
	}
	status := 0
	code := "DROPPED"
	if rp != nil {
		status, code = rp.status, rp.code
		if rp.applied {
			s.applied++
		}
	}
	s.total++
	s.byMethod[r.Method]++
	s.byRoute[r.Method+" "+pattern+" "+strconv.Itoa(status)]++
	if code != "" {
		s.byCode[code]++
	}
	if status == http.StatusTooManyRequests {
		s.tooMany++
	}
	l := RequestLog{Time: e.cfg.Now(), Method: r.Method, Path: r.URL.Path, Status: status, Code: code}
	switch {
	case e.cfg.RecentRequests <= 0:
	case len(s.recent) < e.cfg.RecentRequests:
		s.recent = append(s.recent, l)
	default:
		s.recent[s.next] = l
		s.next = (s.next + 1) % len(s.recent)
	}
}

// Requests returns the request counters.
func (e *Emulator) Requests() RequestStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	return RequestStats{
		Total:           s.total,
		ByMethod:        orEmpty(maps.Clone(s.byMethod)),
		ByRoute:         orEmpty(maps.Clone(s.byRoute)),
		ByCode:          orEmpty(maps.Clone(s.byCode)),
		TooManyRequests: s.tooMany,
		Writes:          s.writes,
		AppliedWrites:   s.applied,
		TokenRefreshes:  e.minted,
		Recent:          append(append([]RequestLog{}, s.recent[s.next:]...), s.recent[:s.next]...),
	}
}

func orEmpty(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}

// ResetRequests zeroes the request counters (not TokenRefreshes).
func (e *Emulator) ResetRequests() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats = statsState{}
}
