package zohoemu

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// apiError is Zoho's error object, whole-request or one element of a share array.
// The field order is Zoho's.
type apiError struct {
	Code    string         `json:"code"`
	Details map[string]any `json:"details"`
	Message string         `json:"message"`
	Status  string         `json:"status"`
}

func newError(code, message string, details map[string]any) apiError {
	if details == nil {
		details = map[string]any{}
	}
	return apiError{Code: code, Details: details, Message: message, Status: "error"}
}

func success(message string, details map[string]any) apiError {
	if details == nil {
		details = map[string]any{}
	}
	return apiError{Code: "SUCCESS", Details: details, Message: message, Status: "success"}
}

// reply is a response built before it is sent, so a fault can replace it after
// the change it describes was applied.
type reply struct {
	status     int
	body       any    // encoded as JSON; nil means no body
	raw        string // a non-JSON body (text/plain), used by faults that mimic a proxy
	code       string // Zoho code for request stats
	retryAfter time.Duration
	header     map[string]string
	applied    bool // a write changed the org
	drop       bool // close the connection without a reply
}

func errorReply(status int, code, message string, details map[string]any) *reply {
	return &reply{status: status, body: newError(code, message, details), code: code}
}

func jsonReply(status int, body any, code string) *reply {
	return &reply{status: status, body: body, code: code}
}

func (rp *reply) write(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range rp.header {
		h.Set(k, v)
	}
	if rp.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((rp.retryAfter+time.Second-1)/time.Second)))
	}
	switch {
	case rp.body != nil:
		b, err := json.Marshal(rp.body)
		if err != nil {
			// Every body is built from plain structs and maps; keep the reply honest anyway.
			rp.status, b = http.StatusInternalServerError, []byte(`{"code":"INTERNAL_ERROR","details":{},"message":"Internal Server Error","status":"error"}`)
		}
		h.Set("Content-Type", "application/json;charset=UTF-8")
		h.Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(rp.status)
		_, _ = w.Write(b)
	case rp.raw != "":
		h.Set("Content-Type", "text/plain;charset=UTF-8")
		w.WriteHeader(rp.status)
		_, _ = w.Write([]byte(rp.raw))
	default:
		w.WriteHeader(rp.status)
	}
}
