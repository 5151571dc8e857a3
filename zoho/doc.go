// Package zoho is a client for Zoho CRM's Share Records API and the parts of the
// Users and OAuth APIs that sharing needs.
//
// It speaks three dialects of the same endpoint
// ({api_domain}/crm/{version}/{module}/{record_id}/actions/share): v2 and v2.1,
// whose recipients are users named by "user":{"id":…}, and v8, whose recipients are
// users, groups or roles named by "shared_with":{"type":…,"id":…}.
//
// Every non-2xx reply, and every error element inside a 2xx reply, becomes a
// *Error that keeps Zoho's code, so callers can branch with errors.Is on the
// sentinels below and decide about retries with (*Error).Retryable.
//
// The package knows nothing of NATS, CloudEvents or rules. Tokens and client
// secrets never appear in its errors or logs.
package zoho
