package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
)

// ApplyEvents maps several events and carries out all their intents in one
// ApplyIntents call, in the events' order. Intents for one record are thus
// folded into one write that takes the record straight to the state the
// events lead to, instead of through every state between: a forced replay of
// a deal that was assigned, reassigned and closed reads the deal and, when it
// is already private, writes nothing.
//
// It returns one Report and one error per event. A Report's Calls are left
// zero, since a folded write serves several events; calls counts every Zoho
// call of the batch once. An event's error is nil when its intents all
// succeeded; a mapping error is permanent and wraps ErrMapper, as in Apply.
func (h *Handler) ApplyEvents(ctx context.Context, evs []event.Event) (reports []Report, calls Calls, errs []error) {
	reports = make([]Report, len(evs))
	errs = make([]error, len(evs))
	var all []Intent
	owner := make([]int, 0, len(evs))
	for i, ev := range evs {
		intents, err := h.mapper.Map(ev)
		if err != nil {
			e := &Error{class: classPermanent, err: fmt.Errorf("%w: %w", ErrMapper, err)}
			var r interface{ Rule() string }
			if errors.As(err, &r) {
				e.rule = r.Rule()
			}
			errs[i] = e
			continue
		}
		all = append(all, intents...)
		for range intents {
			owner = append(owner, i)
		}
	}
	if len(all) == 0 {
		return reports, calls, errs
	}
	rep, _ := h.ApplyIntents(ctx, all)
	calls = rep.Calls
	perEvent := make([][]error, len(evs))
	for k, ir := range rep.Intents {
		i := owner[k]
		reports[i].Intents = append(reports[i].Intents, ir)
		if ir.Err != nil && !containsErr(perEvent[i], ir.Err) {
			perEvent[i] = append(perEvent[i], ir.Err)
		}
	}
	for i, es := range perEvent {
		if len(es) > 0 {
			errs[i] = joinErrors(es)
		}
	}
	return reports, calls, errs
}

// containsErr reports whether errs holds err itself (a folded write's error is
// shared by every intent it served).
func containsErr(errs []error, err error) bool {
	for _, e := range errs {
		if e == err {
			return true
		}
	}
	return false
}
