package handlers

import (
	"fmt"
	"slices"

	"github.com/crmshare/crmshare/zoho"
)

// access is what a direct share gives one recipient.
type access struct {
	perm    zoho.Permission
	related bool // share_related_records
}

// shareList is a record's direct share list in Zoho's order, keyed by recipient.
// PUT bodies are built only from it, so every recipient's permission and related
// flag are re-sent exactly as GET reported them.
type shareList struct {
	order []zoho.Recipient
	m     map[zoho.Recipient]access
}

func newShareList() *shareList { return &shareList{m: make(map[zoho.Recipient]access)} }

// splitEntries separates GET's entries into the record's direct shares and the
// recipients that see it through another record's related-records share.
func splitEntries(entries []zoho.SharedEntry, recordID string) (direct *shareList, inherited map[zoho.Recipient]bool) {
	direct = newShareList()
	inherited = make(map[zoho.Recipient]bool)
	for _, e := range entries {
		if !e.Direct(recordID) {
			inherited[e.Recipient] = true
			continue
		}
		s := e.Share()
		direct.set(s.Recipient, access{perm: s.Permission, related: s.ShareRelated})
	}
	return direct, inherited
}

func (l *shareList) get(r zoho.Recipient) (access, bool) { a, ok := l.m[r]; return a, ok }

func (l *shareList) has(r zoho.Recipient) bool { _, ok := l.m[r]; return ok }

func (l *shareList) len() int { return len(l.order) }

func (l *shareList) set(r zoho.Recipient, a access) {
	if _, ok := l.m[r]; !ok {
		l.order = append(l.order, r)
	}
	l.m[r] = a
}

func (l *shareList) del(r zoho.Recipient) {
	if _, ok := l.m[r]; !ok {
		return
	}
	delete(l.m, r)
	l.order = slices.DeleteFunc(l.order, func(x zoho.Recipient) bool { return x == r })
}

func (l *shareList) clone() *shareList {
	c := &shareList{order: slices.Clone(l.order), m: make(map[zoho.Recipient]access, len(l.m))}
	for r, a := range l.m {
		c.m[r] = a
	}
	return c
}

// equal compares recipients and their access; order does not matter to Zoho.
func (l *shareList) equal(o *shareList) bool {
	if len(l.m) != len(o.m) {
		return false
	}
	for r, a := range l.m {
		if b, ok := o.m[r]; !ok || a != b {
			return false
		}
	}
	return true
}

func (l *shareList) shares() []zoho.Share {
	out := make([]zoho.Share, len(l.order))
	for i, r := range l.order {
		a := l.m[r]
		out[i] = zoho.Share{Recipient: r, Permission: a.perm, ShareRelated: a.related}
	}
	return out
}

// counts is the number of recipients of each kind.
type counts struct{ users, groups, roles int }

func (l *shareList) counts() counts {
	var c counts
	for _, r := range l.order {
		switch r.Type {
		case zoho.RecipientUser:
			c.users++
		case zoho.RecipientGroup:
			c.groups++
		case zoho.RecipientRole:
			c.roles++
		}
	}
	return c
}

// limits are Zoho's caps on one record's direct shares (contract §1.1, §6).
type limits struct {
	users, groups, roles int // groups and roles are 0 before v8: not allowed at all
}

func limitsFor(version string) limits {
	if version == "v8" {
		return limits{users: 10, groups: 5, roles: 5}
	}
	return limits{users: 10}
}

// check reports whether c fits; the error names the counts and wraps
// zoho.ErrShareLimitExceeded.
func (lim limits) check(c counts) error {
	if c.users <= lim.users && c.groups <= lim.groups && c.roles <= lim.roles {
		return nil
	}
	if lim.groups == 0 && lim.roles == 0 {
		return fmt.Errorf("%d users would share the record, limit %d: %w", c.users, lim.users, zoho.ErrShareLimitExceeded)
	}
	return fmt.Errorf("%d users, %d groups and %d roles would share the record, limits %d, %d and %d: %w",
		c.users, c.groups, c.roles, lim.users, lim.groups, lim.roles, zoho.ErrShareLimitExceeded)
}
