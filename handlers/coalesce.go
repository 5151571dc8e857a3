package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/crmshare/crmshare/zoho"
)

// ErrDeferred is the error HandleRun gives an event it did not carry out
// because an earlier event of the run failed in a way that may heal. It is
// retryable, and its Deferred method tells a consumer to keep the event in
// its lane behind the failed one instead of settling it.
var ErrDeferred error = deferredError{}

type deferredError struct{}

func (deferredError) Error() string {
	return "not attempted: an earlier event of the record failed and is retried first"
}

// Deferred reports true: the event was not attempted.
func (deferredError) Deferred() bool { return true }

// Retryable reports true: the event can be carried out later.
func (deferredError) Retryable() bool { return true }

// HandleRun handles events that wait in one record's lane, in stream order,
// and returns one error per event (nil: done), each as Handle would.
//
// Consecutive events whose intents are all grants on one record are merged:
// their intents go to Zoho together, so N first-time grants on a record cost
// one POST instead of N. A merged run stops before Zoho's per-call and
// per-record caps (10 users, and on v8 also 5 groups, 5 roles and 20
// entries), and the next run starts there. Any other event is carried out on
// its own, in its place.
//
// When a merged write fails, each event of the run is judged on its own: an
// event whose intents all succeeded is done; the others are carried out again
// one by one, so a permanent failure (an unknown user, a full record) fails
// only the event that asked for it. Once an event fails in a way that may heal
// (a 5xx, a timeout, throttling, rejected credentials), the events after it
// get ErrDeferred and are not attempted, so a consumer applies them only after
// the failed event's retry: the record's final state follows stream order.
// After a throttled or credentials failure, or the end of ctx, a merged run is
// not retried one by one at all.
func (h *Handler) HandleRun(ctx context.Context, evs []event.Event) []error {
	errs := make([]error, len(evs))
	intents := make([][]Intent, len(evs))
	for i, ev := range evs {
		ins, err := h.mapper.Map(ev)
		if err != nil {
			errs[i] = mapperError(err)
			continue
		}
		intents[i] = ins
	}
	stopped := false
	// stop notes a failure that may heal: the events after it wait.
	stop := func(err error) {
		if retryable(err) {
			stopped = true
		}
	}
	for i := 0; i < len(evs); {
		switch {
		case stopped && errs[i] == nil:
			errs[i] = ErrDeferred
			i++
			continue
		case errs[i] != nil || len(intents[i]) == 0:
			i++ // a mapping error or nothing to do: no effect on Zoho
			continue
		}
		run := h.mergeable(intents, errs, i)
		if len(run) == 1 {
			_, errs[i] = h.ApplyIntents(ctx, intents[i])
			stop(errs[i])
			i++
			continue
		}
		var merged []Intent
		owner := make([]int, 0, len(run))
		for _, k := range run {
			merged = append(merged, intents[k]...)
			for range intents[k] {
				owner = append(owner, k)
			}
		}
		rep, err := h.ApplyIntents(ctx, merged)
		if err != nil {
			failed := make(map[int]bool)
			for n, ir := range rep.Intents {
				if ir.Err != nil {
					failed[owner[n]] = true
				}
			}
			if giveUp(ctx, err) {
				// Retrying at once would fail the same way or make it worse:
				// the first failed event takes the error, the rest wait.
				for _, k := range run {
					if failed[k] && !stopped {
						errs[k] = err
						stopped = true
					}
				}
			}
			for _, k := range run {
				switch {
				case stopped && errs[k] == nil:
					errs[k] = ErrDeferred
				case errs[k] != nil, !failed[k]:
				default:
					_, errs[k] = h.ApplyIntents(ctx, intents[k])
					stop(errs[k])
				}
			}
		}
		i = run[len(run)-1] + 1
	}
	return errs
}

// mergeable returns the events from i on that can share one grant write:
// i itself and the following events whose intents are all grants on i's
// record, as long as their recipients fit one call. Events with nothing to
// do or a mapping error in between are skipped over, not included.
func (h *Handler) mergeable(intents [][]Intent, errs []error, i int) []int {
	key, ok := grantsOn(intents[i])
	if !ok {
		return []int{i}
	}
	seen := make(map[Grant]bool)
	var c counts
	fits := func(ins []Intent) bool {
		next := c
		var add []Grant
		for _, in := range ins {
			for _, g := range in.Recipients {
				id := Grant{Recipient: g.Recipient, Email: g.Email}
				if seen[id] || containsGrant(add, id) {
					continue
				}
				add = append(add, id)
				switch {
				case g.Email != "" || g.Recipient.Type == zoho.RecipientUser:
					next.users++
				case g.Recipient.Type == zoho.RecipientGroup:
					next.groups++
				case g.Recipient.Type == zoho.RecipientRole:
					next.roles++
				}
			}
		}
		if h.limits.check(next) != nil || next.users+next.groups+next.roles > maxEntriesPerCall {
			return false
		}
		c = next
		for _, g := range add {
			seen[g] = true
		}
		return true
	}
	if !fits(intents[i]) {
		return []int{i}
	}
	run := []int{i}
	for k := i + 1; k < len(intents); k++ {
		if errs[k] != nil || len(intents[k]) == 0 {
			continue
		}
		if kk, ok := grantsOn(intents[k]); !ok || kk != key || !fits(intents[k]) {
			break
		}
		run = append(run, k)
	}
	return run
}

// maxEntriesPerCall is the most share entries one v8 call takes.
const maxEntriesPerCall = 20

func containsGrant(gs []Grant, g Grant) bool {
	for _, x := range gs {
		if x == g {
			return true
		}
	}
	return false
}

// grantsOn reports the record key when every intent is a grant on one record.
func grantsOn(ins []Intent) (string, bool) {
	if len(ins) == 0 {
		return "", false
	}
	key := ins[0].Key()
	for _, in := range ins {
		if in.Action != ActionGrant || in.Key() != key {
			return "", false
		}
	}
	return key, true
}

// mapperError wraps a mapping error as a permanent *Error, as Apply does.
func mapperError(err error) error {
	e := &Error{class: classPermanent, err: fmt.Errorf("%w: %w", ErrMapper, err)}
	var r interface{ Rule() string }
	if errors.As(err, &r) {
		e.rule = r.Rule()
	}
	return e
}

func retryable(err error) bool {
	var r interface{ Retryable() bool }
	return err != nil && errors.As(err, &r) && r.Retryable()
}

// giveUp reports whether a failed merged write should not be retried event by
// event right away: ctx is done, the credentials were rejected, or Zoho
// throttled us.
func giveUp(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	var ce *zoho.CredentialsError
	var ze *zoho.Error
	return errors.As(err, &ce) || (errors.As(err, &ze) && ze.Throttled())
}
