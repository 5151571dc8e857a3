package zoho

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// Share gives recipients access to a record, keeping its existing shares. It
// returns one Result per entry of shares, in order, whenever Zoho answered per
// entry (HTTP 200, 201, 207, or v8's 400 or 403 with a share array); the error
// is only for whole-request failures, as a *Error. An empty list is refused.
//
// POST /crm/{version}/{module}/{record_id}/actions/share
// https://www.zoho.com/crm/developer/docs/api/v8/share-record.html
// (v2: https://www.zoho.com/crm/developer/docs/api/v2/share-record.html)
func (c *Client) Share(ctx context.Context, module, recordID string, shares []Share) ([]Result, error) {
	res, err := c.writeShares(ctx, http.MethodPost, module, recordID, shares)
	if err != nil {
		return nil, fmt.Errorf("share %s/%s: %w", module, recordID, err)
	}
	return res, nil
}

// UpdateShares replaces the record's whole list of direct shares with shares:
// recipients left out lose their access. Results and errors are as for Share. An
// empty list is refused; use RevokeAll to remove every share.
//
// PUT /crm/{version}/{module}/{record_id}/actions/share
// https://www.zoho.com/crm/developer/docs/api/v8/update-share-permissions.html
func (c *Client) UpdateShares(ctx context.Context, module, recordID string, shares []Share) ([]Result, error) {
	res, err := c.writeShares(ctx, http.MethodPut, module, recordID, shares)
	if err != nil {
		return nil, fmt.Errorf("update shares %s/%s: %w", module, recordID, err)
	}
	return res, nil
}

// SharedWith lists the record's share entries. A record shared with nobody
// (HTTP 204) gives nil, nil.
//
// GET /crm/{version}/{module}/{record_id}/actions/share
// https://www.zoho.com/crm/developer/docs/api/v8/get-shared-record-details.html
func (c *Client) SharedWith(ctx context.Context, module, recordID string) ([]SharedEntry, error) {
	return c.ListShares(ctx, module, recordID, ListQuery{})
}

// ListQuery narrows a ListShares call.
type ListQuery struct {
	// SharedTo restricts the list to entries for this user ID (Zoho's sharedTo).
	SharedTo string
	// View is Zoho's view parameter: "summary", or "manage" in v2/v2.1. Empty
	// sends none. Zoho refuses other values with PATTERN_NOT_MATCHED.
	View string
}

// ListShares lists the record's share entries, narrowed by q. A record with no
// matching entry (HTTP 204) gives nil, nil.
//
// GET /crm/{version}/{module}/{record_id}/actions/share?sharedTo=…&view=…
// https://www.zoho.com/crm/developer/docs/api/v8/get-shared-record-details.html
func (c *Client) ListShares(ctx context.Context, module, recordID string, q ListQuery) ([]SharedEntry, error) {
	entries, err := c.listShares(ctx, module, recordID, q)
	if err != nil {
		return nil, fmt.Errorf("list shares %s/%s: %w", module, recordID, err)
	}
	return entries, nil
}

// RevokeAll removes every direct share of the record. A record with nothing to
// revoke gives an error that matches ErrNothingToRevoke, which callers that want
// "no shares" may treat as success.
//
// DELETE /crm/{version}/{module}/{record_id}/actions/share
// https://www.zoho.com/crm/developer/docs/api/v8/revoke-shared-record.html
func (c *Client) RevokeAll(ctx context.Context, module, recordID string) error {
	if err := c.revokeAll(ctx, module, recordID); err != nil {
		return fmt.Errorf("revoke all %s/%s: %w", module, recordID, err)
	}
	return nil
}

func sharePath(module, recordID string) (string, error) {
	if module == "" {
		return "", invalidRequest("empty module")
	}
	if recordID == "" {
		return "", invalidRequest("empty record id")
	}
	return url.PathEscape(module) + "/" + url.PathEscape(recordID) + "/actions/share", nil
}

func (c *Client) writeShares(ctx context.Context, method, module, recordID string, shares []Share) ([]Result, error) {
	path, err := sharePath(module, recordID)
	if err != nil {
		return nil, err
	}
	body, err := c.encodeShares(shares)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, apiRequest{method: method, path: path, body: body})
	if err != nil {
		return nil, err
	}
	perEntry := len(resp.env.Share.entries) > 0 && !resp.env.Share.object &&
		(resp.status/100 == 2 || resp.status == http.StatusBadRequest || resp.status == http.StatusForbidden)
	if !perEntry {
		if resp.status/100 == 2 && resp.env.errorCode() == "" && !resp.env.nonJSON {
			return nil, &Error{Status: resp.status, Message: "reply has no per-entry results"}
		}
		return nil, apiError(resp)
	}
	if n := len(resp.env.Share.entries); n != len(shares) {
		// The outcome of each entry is unknown: retryable, so the caller re-reads.
		return nil, &Error{Message: fmt.Sprintf("reply has %d results for %d entries (HTTP %d)", n, len(shares), resp.status)}
	}
	results := make([]Result, len(shares))
	for i, en := range resp.env.Share.entries {
		results[i] = Result{Code: en.Code, Message: en.Message}
		if !en.success() {
			results[i].Err = &Error{Status: resp.status, Code: en.Code, Message: en.Message, Details: en.Details}
		}
	}
	return results, nil
}

// Request bodies carry only the dialect's documented keys.
type (
	v2Body struct {
		Share []v2Entry `json:"share"`
	}
	v2Entry struct {
		User         idRef  `json:"user"`
		Permission   string `json:"permission"`
		ShareRelated bool   `json:"share_related_records"`
	}
	idRef struct {
		ID string `json:"id"`
	}
	v8Body struct {
		Share               []v8Entry `json:"share"`
		NotifyOnCompletion  bool      `json:"notify_on_completion"`
		NotifySharedMembers bool      `json:"notify_shared_members"`
	}
	v8Entry struct {
		SharedWith   v8Principal `json:"shared_with"`
		Permission   string      `json:"permission"`
		ShareRelated bool        `json:"share_related_records"`
		Type         string      `json:"type"`
	}
	v8Principal struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
)

// encodeShares checks shares and encodes them in the client's dialect.
func (c *Client) encodeShares(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, invalidRequest("empty share list (use RevokeAll to remove every share)")
	}
	for i, s := range shares {
		if s.Recipient.ID == "" {
			return nil, invalidRequest("share[%d]: empty recipient id", i)
		}
		if _, ok := recipientTypeNames[s.Recipient.Type]; !ok {
			return nil, invalidRequest("share[%d]: invalid recipient type %d", i, int(s.Recipient.Type))
		}
		if _, ok := permissionNames[s.Permission]; !ok {
			return nil, invalidRequest("share[%d]: invalid permission %d", i, int(s.Permission))
		}
		if c.version != "v8" && s.Recipient.Type != RecipientUser {
			return nil, invalidRequest("share[%d]: %s cannot share with %s (users only)", i, c.version, s.Recipient.Type)
		}
	}
	if c.version != "v8" {
		b := v2Body{Share: make([]v2Entry, len(shares))}
		for i, s := range shares {
			b.Share[i] = v2Entry{User: idRef{ID: s.Recipient.ID}, Permission: s.Permission.String(), ShareRelated: s.ShareRelated}
		}
		return json.Marshal(b)
	}
	b := v8Body{Share: make([]v8Entry, len(shares)), NotifyOnCompletion: c.notify, NotifySharedMembers: c.notify}
	for i, s := range shares {
		b.Share[i] = v8Entry{
			SharedWith:   v8Principal{Type: s.Recipient.Type.String(), ID: s.Recipient.ID},
			Permission:   s.Permission.String(),
			ShareRelated: s.ShareRelated,
			Type:         "private",
		}
	}
	return json.Marshal(b)
}

func (c *Client) listShares(ctx context.Context, module, recordID string, q ListQuery) ([]SharedEntry, error) {
	path, err := sharePath(module, recordID)
	if err != nil {
		return nil, err
	}
	v := url.Values{}
	if q.SharedTo != "" {
		v.Set("sharedTo", q.SharedTo)
	}
	if q.View != "" {
		v.Set("view", q.View)
	}
	resp, err := c.do(ctx, apiRequest{method: http.MethodGet, path: path, query: v})
	if err != nil {
		return nil, err
	}
	if resp.status/100 != 2 || resp.env.errorCode() != "" || resp.env.nonJSON {
		return nil, apiError(resp)
	}
	if len(resp.env.Share.entries) == 0 {
		return nil, nil
	}
	out := make([]SharedEntry, 0, len(resp.env.Share.entries))
	for i, en := range resp.env.Share.entries {
		e, err := en.sharedEntry()
		if err != nil {
			return nil, &Error{Status: resp.status, Message: fmt.Sprintf("decode share[%d]: %v", i, err), Err: err}
		}
		out = append(out, e)
	}
	return out, nil
}

func (c *Client) revokeAll(ctx context.Context, module, recordID string) error {
	path, err := sharePath(module, recordID)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, apiRequest{method: http.MethodDelete, path: path})
	if err != nil {
		return err
	}
	if resp.status/100 != 2 || resp.env.errorCode() != "" || resp.env.nonJSON {
		return apiError(resp)
	}
	return nil
}
