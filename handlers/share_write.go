package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/crmshare/crmshare/zoho"
)

// grant makes sure each recipient has the requested access, writing only what
// is missing. A first-time grant costs one POST and nothing else. Zoho refuses
// recipients who already see the record ("already visible"); only then is the
// record read, once: a direct share with the same access is success, one with
// different access is corrected by one PUT of the whole direct list, and access
// from elsewhere (owner, role, a parent's related-records share) is success too.
// Because of this a repeated POST (after an unknown outcome) converges.
func (r *recordRun) grant(ctx context.Context, gs []resolvedGrant) (map[zoho.Recipient]Outcome, []error) {
	out := make(map[zoho.Recipient]Outcome, len(gs))
	if len(gs) == 0 {
		return out, nil
	}
	shares := make([]zoho.Share, len(gs))
	for i, g := range gs {
		shares[i] = zoho.Share{Recipient: g.r, Permission: g.a.perm, ShareRelated: g.a.related}
	}
	r.calls.Post++
	results, err := r.h.sharer.Share(ctx, r.module, r.recordID, shares)
	if err != nil {
		if errors.Is(err, zoho.ErrShareLimitExceeded) {
			all := make([]int, len(gs))
			for i := range all {
				all[i] = i
			}
			return out, []error{r.limitRefused(ctx, gs, all, err)}
		}
		return out, []error{r.errorf(nil, classFromCause, fmt.Errorf("share: %w", err))}
	}
	if len(results) != len(shares) {
		return out, []error{r.errorf(nil, classRetryable,
			fmt.Errorf("share: %d results for %d entries: %w", len(results), len(shares), ErrUnexpectedReply))}
	}
	var visible, limited []int
	var errs []error
	for i, res := range results {
		switch {
		case res.Err == nil:
			out[gs[i].r] = OutcomeApplied
		case errors.Is(res.Err, zoho.ErrAlreadyVisible):
			visible = append(visible, i)
		case errors.Is(res.Err, zoho.ErrShareLimitExceeded):
			limited = append(limited, i)
		default:
			errs = append(errs, r.errorf(&gs[i], classFromCause, fmt.Errorf("share: %w", res.Err)))
		}
	}
	if len(limited) > 0 {
		errs = append(errs, r.limitRefused(ctx, gs, limited, results[limited[0]].Err))
	}
	if len(visible) == 0 {
		return out, errs
	}

	entries, err := r.get(ctx)
	if err != nil {
		return out, append(errs, err)
	}
	direct, _ := splitEntries(entries, r.recordID)
	before := direct.clone()
	for _, i := range visible {
		g := gs[i]
		cur, ok := direct.get(g.r)
		switch {
		case !ok:
			out[g.r] = OutcomeAlreadyAccessible
		case cur == g.a:
			out[g.r] = OutcomeUnchanged
		default:
			direct.set(g.r, g.a)
			out[g.r] = OutcomeApplied
		}
	}
	if !direct.equal(before) {
		// Only permissions or related flags change, so the counts cannot grow.
		_, perrs := r.put(ctx, direct, before, gs)
		errs = append(errs, perrs...)
	}
	return out, errs
}

// limitRefused turns Zoho's sharing-limit refusal of gs[idx] into a permanent
// error that names the counts: it reads the record to learn how many direct
// shares there are now.
func (r *recordRun) limitRefused(ctx context.Context, gs []resolvedGrant, idx []int, cause error) error {
	entries, err := r.get(ctx)
	if err != nil {
		return r.errorf(nil, classPermanent, fmt.Errorf("share (could not read the record's shares to count them: %w): %w", err, cause))
	}
	direct, _ := splitEntries(entries, r.recordID)
	now := direct.counts()
	for _, i := range idx {
		direct.set(gs[i].r, gs[i].a)
	}
	c := direct.counts()
	return r.errorf(nil, classPermanent, fmt.Errorf(
		"share: %d users, %d groups, %d roles share the record directly; with %d more requested it would be %d users, %d groups, %d roles: %w",
		now.users, now.groups, now.roles, len(idx), c.users, c.groups, c.roles, cause))
}

// convergeResult is what converge found and did.
type convergeResult struct {
	initial    *shareList                     // the direct shares before
	accessible map[zoho.Recipient]bool        // recipients who see the record some other way
	wrote      bool                           // a PUT or DELETE was sent and succeeded
	sets       map[*resolvedIntent]*shareList // each set intent's own list
}

// converge reads the record once, computes the direct share list the intents
// lead to when applied in order, and writes it with one PUT (one DELETE when
// empty) unless it is already there. Only direct shares are rewritten;
// inherited entries are left alone.
func (r *recordRun) converge(ctx context.Context, ris []*resolvedIntent) (convergeResult, []error) {
	res := convergeResult{accessible: make(map[zoho.Recipient]bool), sets: make(map[*resolvedIntent]*shareList)}
	entries, err := r.get(ctx)
	if err != nil {
		return res, []error{err}
	}
	direct, inherited := splitEntries(entries, r.recordID)
	res.initial = direct
	want := direct.clone()
	for _, ri := range ris {
		switch ri.in.Action {
		case ActionGrant:
			for _, g := range ri.grants {
				if !want.has(g.r) && inherited[g.r] {
					res.accessible[g.r] = true
					continue
				}
				want.set(g.r, g.a)
			}
		case ActionRevoke:
			for _, g := range ri.grants {
				want.del(g.r)
			}
		case ActionSet:
			next := newShareList()
			for _, g := range ri.grants {
				if !want.has(g.r) && inherited[g.r] {
					res.accessible[g.r] = true
					continue
				}
				next.set(g.r, g.a)
			}
			res.sets[ri] = next
			want = next
		case ActionRevokeAll:
			want = newShareList()
		}
	}
	switch {
	case want.equal(direct):
		return res, nil
	case want.len() == 0:
		wrote, err := r.revokeAll(ctx)
		if err != nil {
			return res, []error{err}
		}
		res.wrote = wrote
		return res, nil
	}
	if err := r.h.limits.check(want.counts()); err != nil {
		return res, []error{r.errorf(nil, classPermanent, err)}
	}
	var gs []resolvedGrant
	for _, ri := range ris {
		gs = append(gs, ri.grants...)
	}
	acc, errs := r.put(ctx, want, direct, gs)
	for rc := range acc {
		res.accessible[rc] = true
	}
	res.wrote = true
	return res, errs
}

// outcome is one intent's outcome, judged against the direct shares before.
func (res convergeResult) outcome(ri *resolvedIntent) (Outcome, []RecipientReport) {
	reps := append([]RecipientReport(nil), ri.skipped...)
	applied := false
	for _, g := range ri.grants {
		o := OutcomeUnchanged
		cur, had := res.initial.get(g.r)
		switch ri.in.Action {
		case ActionGrant, ActionSet:
			switch {
			case res.accessible[g.r] && !had:
				o = OutcomeAlreadyAccessible
			case had && cur == g.a:
			case res.wrote:
				o = OutcomeApplied
			}
		case ActionRevoke:
			if had && res.wrote {
				o = OutcomeApplied
			}
		}
		reps = append(reps, RecipientReport{Recipient: g.r, Email: g.email, Outcome: o})
	}
	switch ri.in.Action {
	case ActionSet:
		applied = res.wrote && !res.sets[ri].equal(res.initial)
	case ActionRevokeAll:
		applied = res.wrote && res.initial.len() > 0
	}
	return summarize(reps, applied), reps
}

// revokeAll removes every direct share; "nothing to revoke" is success.
func (r *recordRun) revokeAll(ctx context.Context) (wrote bool, err error) {
	r.calls.Delete++
	err = r.h.sharer.RevokeAll(ctx, r.module, r.recordID)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, zoho.ErrNothingToRevoke):
		return false, nil
	}
	return false, r.errorf(nil, classFromCause, fmt.Errorf("revoke all: %w", err))
}

// get reads the record's share entries.
func (r *recordRun) get(ctx context.Context) ([]zoho.SharedEntry, error) {
	r.calls.Get++
	entries, err := r.h.sharer.SharedWith(ctx, r.module, r.recordID)
	if err != nil {
		return nil, r.errorf(nil, classFromCause, fmt.Errorf("read shares: %w", err))
	}
	return entries, nil
}

// put replaces the direct share list with want. Zoho answering "already
// visible" for a recipient that had no direct share means the recipient sees
// the record some other way; such recipients are returned, not failed. gs names
// the rules behind the recipients, for errors.
func (r *recordRun) put(ctx context.Context, want, before *shareList, gs []resolvedGrant) (map[zoho.Recipient]bool, []error) {
	shares := want.shares()
	r.calls.Put++
	results, err := r.h.sharer.UpdateShares(ctx, r.module, r.recordID, shares)
	if err != nil {
		return nil, []error{r.errorf(nil, classFromCause, fmt.Errorf("update shares: %w", err))}
	}
	if len(results) != len(shares) {
		return nil, []error{r.errorf(nil, classRetryable,
			fmt.Errorf("update shares: %d results for %d entries: %w", len(results), len(shares), ErrUnexpectedReply))}
	}
	accessible := make(map[zoho.Recipient]bool)
	var errs []error
	for i, res := range results {
		if res.Err == nil {
			continue
		}
		rc := shares[i].Recipient
		if errors.Is(res.Err, zoho.ErrAlreadyVisible) && !before.has(rc) {
			accessible[rc] = true
			continue
		}
		g := resolvedGrant{r: rc, rule: r.rules, action: r.action}
		for _, x := range gs {
			if x.r == rc {
				g = x
			}
		}
		errs = append(errs, r.errorf(&g, classFromCause, fmt.Errorf("update shares: %w", res.Err)))
	}
	return accessible, errs
}
