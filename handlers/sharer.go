package handlers

import (
	"context"

	"github.com/crmshare/crmshare/zoho"
)

// Sharer is the part of Zoho's Share Records API the share handler needs.
// *zoho.Client satisfies it. Implementations must be safe for concurrent use.
//
// Share and UpdateShares return one Result per request entry, in order, whenever
// Zoho answered with a per-entry array; their error is for whole-request failures.
// SharedWith returns nil, nil when the record has no share entries (Zoho's 204).
type Sharer interface {
	// Share adds recipients to the record's sharing (POST …/actions/share).
	Share(ctx context.Context, module, recordID string, shares []zoho.Share) ([]zoho.Result, error)
	// SharedWith lists the record's share entries (GET …/actions/share).
	SharedWith(ctx context.Context, module, recordID string) ([]zoho.SharedEntry, error)
	// UpdateShares replaces the record's whole direct share list (PUT …/actions/share).
	UpdateShares(ctx context.Context, module, recordID string, shares []zoho.Share) ([]zoho.Result, error)
	// RevokeAll removes every direct share of the record (DELETE …/actions/share).
	RevokeAll(ctx context.Context, module, recordID string) error
}

// Directory resolves share recipients to CRM users. *zoho.Client satisfies it.
// Both methods return an error matching zoho.ErrUserNotFound when no active,
// confirmed user matches. Implementations must be safe for concurrent use.
type Directory interface {
	// UserByEmail finds the active, confirmed user with that email.
	UserByEmail(ctx context.Context, email string) (zoho.User, error)
	// UserByID finds the active, confirmed user with that ID.
	UserByID(ctx context.Context, id string) (zoho.User, error)
}
