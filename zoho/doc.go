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
// One Client per process holds the only token cache: it refreshes through the
// refresh-token grant (golang.org/x/oauth2) ahead of expiry, with one refresh in
// flight at a time, and answers a 401 INVALID_TOKEN by refreshing once and
// retrying once. A client-wide semaphore keeps calls in flight under Zoho's
// concurrency limit, and a 429 holds new calls for a short, growing pause (or
// for Retry-After). Credentials are of type Secret, which redacts itself in fmt,
// slog and text marshalling. Failures that got no usable reply (network,
// timeouts, undecodable bodies) are a *Error with Status 0, which is retryable.
//
// The package knows nothing of NATS, CloudEvents or rules. Tokens and client
// secrets never appear in its errors or logs.
package zoho
