package zoho

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sentinels for the conditions callers branch on. Match them with errors.Is; a
// *Error matches by Zoho's code (and, where Zoho reuses a generic code, by the
// documented message).
var (
	// ErrAlreadyVisible: "record is already visible to the user." (INVALID_DATA).
	ErrAlreadyVisible = errors.New("zoho: record is already visible to the user")
	// ErrShareLimitExceeded: SHARE_LIMIT_EXCEEDED (v2, v2.1, v7 PUT) or LIMIT_EXCEEDED (v7 POST, v8).
	ErrShareLimitExceeded = errors.New("zoho: record sharing limit exceeded")
	// ErrNothingToRevoke: DELETE on a record with no direct shares, BAD_REQUEST (up to v7)
	// or CANNOT_PROCESS (v8) "No sharing through this record is available to revoke".
	ErrNothingToRevoke = errors.New("zoho: no sharing through this record is available to revoke")
	// ErrSchedulerRunning: a previous share or revoke on the record is still running.
	ErrSchedulerRunning = errors.New("zoho: scheduler is running")
	// ErrInvalidToken: INVALID_TOKEN or AUTHENTICATION_FAILURE (401).
	ErrInvalidToken = errors.New("zoho: invalid oauth token")
	// ErrRateLimited: 429 TOO_MANY_REQUESTS (credits or concurrency).
	ErrRateLimited = errors.New("zoho: too many requests")
	// ErrCredentialsRejected: the accounts server refused the client or refresh token
	// (invalid_code, invalid_client, invalid_client_secret). Only a person can fix it.
	ErrCredentialsRejected = errors.New("zoho: credentials rejected")
	// ErrUserNotFound: an email matches no active, confirmed user.
	ErrUserNotFound = errors.New("zoho: no active confirmed user with that email")
	// ErrInvalidRequest: the client refused to send a request that breaks the
	// contract (an empty share list, a group or role in the v2/v2.1 dialect, an empty
	// ID, an invalid permission). Errors that wrap it are permanent: Retryable is false.
	ErrInvalidRequest = errors.New("zoho: invalid request")
)

// permanentError marks a locally detected failure as not worth retrying, so a
// consumer that classifies errors with Retryable dead-letters instead of naking.
type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Retryable() bool { return false }

// invalidRequest returns a permanent error wrapping ErrInvalidRequest.
func invalidRequest(format string, args ...any) error {
	return &permanentError{err: fmt.Errorf(format+": %w", append(args, ErrInvalidRequest)...)}
}

// Error is a Zoho API call that failed, or one entry of a share request that Zoho
// refused: its HTTP status plus the code and message Zoho put in the body.
type Error struct {
	Status     int            // HTTP status, e.g. 403; 0 when the request never got an answer
	Code       string         // e.g. "SHARE_LIMIT_EXCEEDED"; empty if the body had none
	Message    string         // Zoho's message, e.g. "record is already visible to the user."
	Details    map[string]any // Zoho's details, e.g. json_path, api_name, resource_path_index
	RetryAfter time.Duration  // from a Retry-After header, else 0 (Zoho documents none)
	// CreditsExhausted marks a 429 the client takes to mean the day's API
	// credits are used up (see Suspend).
	CreditsExhausted bool
	// Err is the cause when there was no usable reply (Status 0): a network
	// failure, a timeout or an undecodable body. Errors.Is and errors.As see it.
	Err error
}

// Unwrap returns the cause of a failure without a usable reply, else nil.
func (e *Error) Unwrap() error { return e.Err }

// Error renders status, code and message. It never includes tokens or headers.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "zoho: %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if p, ok := e.Details["json_path"].(string); ok && p != "" {
		b.WriteString(" (at " + p + ")")
	} else if n, ok := e.Details["api_name"].(string); ok && n != "" {
		b.WriteString(" (field " + n + ")")
	}
	if e.CreditsExhausted {
		b.WriteString(" (the day's API credits look used up)")
	}
	return b.String()
}

// Retryable reports whether the same request may succeed later (the R and T classes
// of the contract's error table): 429, 5xx, "Scheduler is running", and token
// problems the client could not fix with one refresh. Everything else is permanent.
func (e *Error) Retryable() bool {
	switch {
	case e.Status == http.StatusTooManyRequests, e.Status >= 500, e.Status == 0:
		return true
	case e.schedulerRunning():
		return true
	case e.Code == "INVALID_TOKEN" || e.Code == "AUTHENTICATION_FAILURE":
		return true
	}
	return false
}

// Throttled reports whether Zoho refused the call for rate (429), so the caller
// should wait longer than for other transient failures.
func (e *Error) Throttled() bool { return e.Status == http.StatusTooManyRequests }

// Suspend reports whether every call will fail the same way for a long
// while: a 429 that means the day's API credits are used up (the last
// X-API-CREDITS-REMAINING left none to spare, or Zoho has answered only 429
// for minutes). A consumer should then pause and probe (Client.Probe) rather
// than spend each event's deliveries until it is dead-lettered.
func (e *Error) Suspend() bool { return e.CreditsExhausted }

// RetryDelay is the wait Zoho asked for with Retry-After, or 0.
func (e *Error) RetryDelay() time.Duration { return e.RetryAfter }

// ErrorCode returns Zoho's code, for dead-letter headers and metrics.
func (e *Error) ErrorCode() string { return e.Code }

// JSONPath returns details.json_path, which names the request entry Zoho refused.
func (e *Error) JSONPath() string { s, _ := e.Details["json_path"].(string); return s }

// APIName returns details.api_name, which names the refused key.
func (e *Error) APIName() string { s, _ := e.Details["api_name"].(string); return s }

func (e *Error) schedulerRunning() bool {
	return (e.Code == "CANNOT_PROCESS" || e.Code == "INVALID_DATA") &&
		strings.HasPrefix(strings.ToLower(e.Message), "scheduler is running")
}

// Is lets errors.Is match the package's sentinels against Zoho's code and, where
// the code is generic, the documented message.
func (e *Error) Is(target error) bool {
	msg := strings.ToLower(e.Message)
	switch target {
	case ErrAlreadyVisible:
		return e.Code == "INVALID_DATA" && strings.HasPrefix(msg, "record is already visible")
	case ErrShareLimitExceeded:
		return e.Code == "SHARE_LIMIT_EXCEEDED" || e.Code == "LIMIT_EXCEEDED"
	case ErrNothingToRevoke:
		return (e.Code == "BAD_REQUEST" || e.Code == "CANNOT_PROCESS") &&
			strings.HasPrefix(msg, "no sharing through this record")
	case ErrSchedulerRunning:
		return e.schedulerRunning()
	case ErrInvalidToken:
		return e.Code == "INVALID_TOKEN" || e.Code == "AUTHENTICATION_FAILURE"
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// CredentialsError is the accounts server refusing the client or its refresh token.
// No request can succeed until an operator fixes the credentials, so a consumer
// should pause rather than dead-letter: Suspend reports true.
type CredentialsError struct {
	Code string // the token endpoint's error: invalid_code, invalid_client, invalid_client_secret
}

// Error names the refusal; it never includes the secret or the token.
func (e *CredentialsError) Error() string {
	return "zoho: credentials rejected by the accounts server: " + e.Code
}

// ErrorCode returns the token endpoint's error, e.g. "invalid_code".
func (e *CredentialsError) ErrorCode() string { return e.Code }

// Is matches ErrCredentialsRejected.
func (e *CredentialsError) Is(target error) bool { return target == ErrCredentialsRejected }

// Retryable is false: retrying the same message cannot help.
func (e *CredentialsError) Retryable() bool { return false }

// Suspend is true: every message will fail the same way until the credentials are
// fixed, so consumption should pause instead of dead-lettering.
func (e *CredentialsError) Suspend() bool { return true }
