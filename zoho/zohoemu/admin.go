package zohoemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// serveAdmin implements the unauthenticated admin API under /_emu/:
//
//	POST /_emu/seed           add or replace seed data (the seed file format)
//	GET  /_emu/state          every record's direct shares (State)
//	GET  /_emu/faults         the fault plan in force
//	POST /_emu/faults         set the fault plan (Faults); an empty body or {} clears it
//	POST /_emu/reset          back to the seeds; faults, counters and credits cleared
//	GET  /_emu/requests       request counters (RequestStats); ?recent=N keeps the last N
//	POST /_emu/requests/reset zero the request counters
//	POST /_emu/shares         {"module","record_id","shares":[Entry…]}: set a record's
//	                          direct shares as a person in Zoho's UI would
//	POST /_emu/expire-tokens  every issued access token expires now
//
// Errors are {"error":"…"} with 400 (bad input), 404 (unknown path) or 405.
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	type route struct{ method, path string }
	handlers := map[route]func(*http.Request) (any, error){
		{http.MethodPost, "/_emu/seed"}:           e.adminSeed,
		{http.MethodGet, "/_emu/state"}:           func(*http.Request) (any, error) { return e.State(), nil },
		{http.MethodGet, "/_emu/faults"}:          func(*http.Request) (any, error) { return e.CurrentFaults(), nil },
		{http.MethodPost, "/_emu/faults"}:         e.adminFaults,
		{http.MethodPost, "/_emu/reset"}:          func(*http.Request) (any, error) { e.Reset(); return ok(), nil },
		{http.MethodGet, "/_emu/requests"}:        e.adminRequests,
		{http.MethodPost, "/_emu/requests/reset"}: func(*http.Request) (any, error) { e.ResetRequests(); return ok(), nil },
		{http.MethodPost, "/_emu/shares"}:         e.adminShares,
		{http.MethodPost, "/_emu/expire-tokens"}:  func(*http.Request) (any, error) { e.ExpireTokens(); return ok(), nil },
	}
	h, found := handlers[route{r.Method, r.URL.Path}]
	if !found {
		status := http.StatusNotFound
		for rt := range handlers {
			if rt.path == r.URL.Path {
				status = http.StatusMethodNotAllowed
			}
		}
		adminReply(w, status, map[string]string{"error": http.StatusText(status)})
		return
	}
	v, err := h(r)
	if err != nil {
		adminReply(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	adminReply(w, http.StatusOK, v)
}

func ok() map[string]string { return map[string]string{"status": "ok"} }

func adminReply(w http.ResponseWriter, status int, v any) {
	rp := &reply{status: status, body: v}
	rp.write(w)
}

func readAdminBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return bytes.TrimSpace(b), nil
}

func (e *Emulator) adminSeed(r *http.Request) (any, error) {
	b, err := readAdminBody(r)
	if err != nil {
		return nil, err
	}
	s, err := ParseSeed(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if err := e.LoadSeed(s); err != nil {
		return nil, err
	}
	return ok(), nil
}

func (e *Emulator) adminFaults(r *http.Request) (any, error) {
	b, err := readAdminBody(r)
	if err != nil {
		return nil, err
	}
	var f Faults
	if len(b) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("faults: %w", err)
		}
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("faults: %w", err)
		}
	}
	e.SetFaults(f)
	return e.CurrentFaults(), nil
}

func (e *Emulator) adminRequests(r *http.Request) (any, error) {
	st := e.Requests()
	if s := r.URL.Query().Get("recent"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("recent %q: want a count", s)
		}
		if n < len(st.Recent) {
			st.Recent = st.Recent[len(st.Recent)-n:]
		}
	}
	return st, nil
}

// SharesRequest is the body of POST /_emu/shares.
type SharesRequest struct {
	Module   string  `json:"module"`
	RecordID string  `json:"record_id"`
	Shares   []Entry `json:"shares"`
}

func (e *Emulator) adminShares(r *http.Request) (any, error) {
	b, err := readAdminBody(r)
	if err != nil {
		return nil, err
	}
	var req SharesRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("shares: %w", err)
	}
	if err := e.SetShares(req.Module, req.RecordID, req.Shares); err != nil {
		return nil, err
	}
	return ok(), nil
}
