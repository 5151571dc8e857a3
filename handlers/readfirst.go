package handlers

import (
	"context"
	"fmt"
	"net/http"

	"github.com/crmshare/crmshare/zoho"
)

// ReadFirst is a Sharer that reads a record's shares before a POST or a
// DELETE and sends only the part that would change something. The Handler
// writes first and reads only when Zoho refuses (cheapest when events are new);
// a forced replay of events that were applied before is the opposite case, and
// ReadFirst makes it cost reads only when Zoho already has the state:
//
//   - Share POSTs only the recipients without any share entry on the record;
//     the others get Zoho's own "already visible" answer, which makes the
//     Handler compare their access and correct it with a PUT if it differs.
//   - RevokeAll sends the DELETE only when the record has a direct share, and
//     otherwise answers as Zoho does for "nothing to revoke".
//   - UpdateShares and SharedWith pass through: the Handler always reads before
//     a PUT.
//
// It is safe for concurrent use when the wrapped Sharer is.
type ReadFirst struct {
	// Sharer is the wrapped Sharer. Required.
	Sharer Sharer
}

// APIVersion returns the wrapped Sharer's dialect when it has one.
func (rf ReadFirst) APIVersion() string {
	if v, ok := rf.Sharer.(interface{ APIVersion() string }); ok {
		return v.APIVersion()
	}
	return ""
}

// alreadyVisible is the per-entry answer Zoho gives a recipient who already
// sees the record; errors.Is(err, zoho.ErrAlreadyVisible) holds for it.
func alreadyVisible() zoho.Result {
	const msg = "record is already visible to the user."
	return zoho.Result{Code: "INVALID_DATA", Message: msg,
		Err: &zoho.Error{Status: http.StatusBadRequest, Code: "INVALID_DATA", Message: msg}}
}

// Share reads the record's entries and POSTs only the recipients not among them.
func (rf ReadFirst) Share(ctx context.Context, module, recordID string, shares []zoho.Share) ([]zoho.Result, error) {
	entries, err := rf.Sharer.SharedWith(ctx, module, recordID)
	if err != nil {
		return nil, fmt.Errorf("read before share: %w", err)
	}
	seen := make(map[zoho.Recipient]bool, len(entries))
	for _, e := range entries {
		seen[e.Recipient] = true
	}
	out := make([]zoho.Result, len(shares))
	var send []zoho.Share
	var at []int
	for i, s := range shares {
		if seen[s.Recipient] {
			out[i] = alreadyVisible()
			continue
		}
		send = append(send, s)
		at = append(at, i)
	}
	if len(send) == 0 {
		return out, nil
	}
	res, err := rf.Sharer.Share(ctx, module, recordID, send)
	if err != nil {
		return nil, err
	}
	if len(res) != len(send) {
		return res, nil // the Handler reports the mismatch
	}
	for k, i := range at {
		out[i] = res[k]
	}
	return out, nil
}

// RevokeAll DELETEs only when the record has a direct share.
func (rf ReadFirst) RevokeAll(ctx context.Context, module, recordID string) error {
	entries, err := rf.Sharer.SharedWith(ctx, module, recordID)
	if err != nil {
		return fmt.Errorf("read before revoke: %w", err)
	}
	for _, e := range entries {
		if e.Direct(recordID) {
			return rf.Sharer.RevokeAll(ctx, module, recordID)
		}
	}
	return &zoho.Error{Status: http.StatusBadRequest, Code: "CANNOT_PROCESS",
		Message: "No sharing through this record is available to revoke (read first: no direct share)"}
}

// UpdateShares passes through.
func (rf ReadFirst) UpdateShares(ctx context.Context, module, recordID string, shares []zoho.Share) ([]zoho.Result, error) {
	return rf.Sharer.UpdateShares(ctx, module, recordID, shares)
}

// SharedWith passes through.
func (rf ReadFirst) SharedWith(ctx context.Context, module, recordID string) ([]zoho.SharedEntry, error) {
	return rf.Sharer.SharedWith(ctx, module, recordID)
}
