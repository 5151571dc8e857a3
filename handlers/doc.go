// Package handlers is the domain of crmshare: share intents, the rules (CEL) that
// map a CloudEvent to intents, and the share handler that carries intents out
// idempotently through a Sharer.
//
// Rules are pure: no I/O and no clock. The share handler talks to Zoho only
// through the small Sharer and Directory interfaces that *zoho.Client satisfies.
// The package knows nothing of NATS.
package handlers
