package handlers

import (
	"context"
	"errors"
	"net"
	"strings"
)

// Sentinels for the share handler's own refusals. Match them with errors.Is.
var (
	// ErrInvalidIntent: an intent the handler will not send to Zoho (missing module or
	// record ID, unknown action or permission, a recipient that is both or neither an
	// email and an ID, groups or roles before v8, a module Zoho cannot share).
	ErrInvalidIntent = errors.New("invalid share intent")
	// ErrUnexpectedReply: Zoho's answer did not match the request (for example fewer
	// per-entry results than entries). Retryable: the next attempt re-reads the record.
	ErrUnexpectedReply = errors.New("unexpected reply from zoho")
	// ErrMapper: the rules could not map the event. Permanent: rules are pure, so a
	// redelivery would fail the same way.
	ErrMapper = errors.New("map event to share intents")
)

// errClass says how an *Error decides Retryable.
type errClass int

const (
	classFromCause errClass = iota // ask the cause (a *zoho.Error knows)
	classPermanent                 // our own refusal: the same input fails the same way
	classRetryable                 // the outcome is unknown; try again from a GET
)

// Error is one intent (or one recipient of an intent) that could not be carried
// out. It names the rule, the record and, when the failure is about one recipient,
// that recipient, and wraps the cause, so errors.Is and errors.As still reach
// *zoho.Error, *zoho.CredentialsError and the zoho sentinels.
type Error struct {
	rule      string
	action    Action
	module    string
	recordID  string
	recipient string
	class     errClass
	err       error
}

// Error renders "rule R: grant Deals/123 (users:456): cause". It carries no secrets:
// zoho errors never include tokens, and recipients are IDs or emails.
func (e *Error) Error() string {
	var head []string
	// A mapping error names its rule itself.
	if e.rule != "" && !errors.Is(e.err, ErrMapper) {
		head = append(head, "rule "+e.rule+":")
	}
	if e.action != 0 {
		head = append(head, e.action.String())
	}
	if e.module != "" || e.recordID != "" {
		head = append(head, e.module+"/"+e.recordID)
	}
	if e.recipient != "" {
		head = append(head, "("+e.recipient+")")
	}
	msg := strings.TrimSuffix(strings.Join(head, " "), ":")
	if e.err != nil {
		if msg != "" {
			msg += ": "
		}
		msg += e.err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.err }

// Rule returns the name of the rule that produced the intent, or "" when unknown.
func (e *Error) Rule() string { return e.rule }

// Action returns the intent's action, or 0 when the failure came before mapping.
func (e *Error) Action() Action { return e.action }

// Module returns the Zoho module of the record, e.g. "Deals".
func (e *Error) Module() string { return e.module }

// RecordID returns the record's ID.
func (e *Error) RecordID() string { return e.recordID }

// Recipient returns the recipient the failure is about ("users:123" or an email),
// or "" when it concerns the whole intent.
func (e *Error) Recipient() string { return e.recipient }

// Retryable reports whether the same intent may succeed later, following the
// contract's error table: Zoho's own classification for *zoho.Error (429, 5xx,
// dropped connections, "Scheduler is running"), true for deadlines and network
// errors, false for rule errors, invalid intents, unknown recipients, sharing
// limits and every other refusal.
func (e *Error) Retryable() bool {
	switch e.class {
	case classPermanent:
		return false
	case classRetryable:
		return true
	}
	var r interface{ Retryable() bool }
	if errors.As(e.err, &r) {
		return r.Retryable()
	}
	if errors.Is(e.err, context.DeadlineExceeded) || errors.Is(e.err, context.Canceled) {
		return true
	}
	var ne net.Error
	return errors.As(e.err, &ne)
}
