package handlers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/crmshare/crmshare/zoho"
)

// Write is a share write a DryRun recorded instead of sending.
type Write struct {
	Method   string // "POST", "PUT" or "DELETE"
	Module   string
	RecordID string
	Shares   []zoho.Share // the request entries; none for DELETE
}

// String renders the write as one line, e.g.
// "POST Deals/123 users:456=read_write+related".
func (w Write) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s/%s", w.Method, w.Module, w.RecordID)
	for i, s := range w.Shares {
		sep := ", "
		if i == 0 {
			sep = " "
		}
		b.WriteString(sep + s.Recipient.String() + "=" + s.Permission.String())
		if s.ShareRelated {
			b.WriteString("+related")
		}
	}
	return b.String()
}

// DryRun is a Sharer that reads through to another Sharer but records writes
// (POST, PUT, DELETE) instead of sending them, answering each as if Zoho had
// accepted it. A Handler built on it runs its whole logic, reads included, and
// changes nothing; Writes lists what it would have written. It is safe for
// concurrent use.
//
// Since nothing is written, a later event on the same record sees the state
// before the recorded writes, so a dry run of several events on one record
// shows the first event's writes exactly and the rest as they would be
// against the current state.
type DryRun struct {
	next Sharer

	mu     sync.Mutex
	writes []Write
}

// NewDryRun returns a DryRun that reads through next.
func NewDryRun(next Sharer) *DryRun { return &DryRun{next: next} }

// APIVersion returns the wrapped Sharer's dialect when it has one, so a
// Handler built on the DryRun checks the same limits.
func (d *DryRun) APIVersion() string {
	if v, ok := d.next.(interface{ APIVersion() string }); ok {
		return v.APIVersion()
	}
	return ""
}

// Writes returns the writes recorded so far, in order.
func (d *DryRun) Writes() []Write {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.writes)
}

func (d *DryRun) record(w Write) {
	d.mu.Lock()
	d.writes = append(d.writes, w)
	d.mu.Unlock()
}

func succeeded(n int) []zoho.Result {
	out := make([]zoho.Result, n)
	for i := range out {
		out[i] = zoho.Result{Code: "SUCCESS", Message: "dry run: not sent"}
	}
	return out
}

// Share records a POST and reports every entry as shared.
func (d *DryRun) Share(_ context.Context, module, recordID string, shares []zoho.Share) ([]zoho.Result, error) {
	d.record(Write{Method: "POST", Module: module, RecordID: recordID, Shares: slices.Clone(shares)})
	return succeeded(len(shares)), nil
}

// UpdateShares records a PUT and reports every entry as written.
func (d *DryRun) UpdateShares(_ context.Context, module, recordID string, shares []zoho.Share) ([]zoho.Result, error) {
	d.record(Write{Method: "PUT", Module: module, RecordID: recordID, Shares: slices.Clone(shares)})
	return succeeded(len(shares)), nil
}

// RevokeAll records a DELETE and reports success.
func (d *DryRun) RevokeAll(_ context.Context, module, recordID string) error {
	d.record(Write{Method: "DELETE", Module: module, RecordID: recordID})
	return nil
}

// SharedWith reads through to the wrapped Sharer.
func (d *DryRun) SharedWith(ctx context.Context, module, recordID string) ([]zoho.SharedEntry, error) {
	return d.next.SharedWith(ctx, module, recordID)
}
