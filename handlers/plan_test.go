package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/crmshare/crmshare/zoho"
)

// countingMapper counts the Map calls of the mapper it wraps.
type countingMapper struct {
	Mapper
	maps atomic.Int64
}

func (m *countingMapper) Map(ev cloudevents.Event) ([]Intent, error) {
	m.maps.Add(1)
	return m.Mapper.Map(ev)
}

// TestPlanKeys: on every example event and edge case, PlanKeys gives the
// keys OrderingKeys gives, and Handle under its plan maps nothing again.
// An event the rules cannot map gets no plan, and Handle reports the error.
func TestPlanKeys(t *testing.T) {
	env := newTestEnv(t, "v8", testSeed(3, 2))
	m := &countingMapper{Mapper: mustRules(t, testRules())}
	unreachable := errors.New("zoho unreachable (test)")
	h, err := New(Config{Mapper: m, Directory: env.client, APIVersion: "v8", Sharer: sharerFuncs{
		share:  func(context.Context, string, string, []zoho.Share) ([]zoho.Result, error) { return nil, unreachable },
		get:    func(context.Context, string, string) ([]zoho.SharedEntry, error) { return nil, unreachable },
		update: func(context.Context, string, string, []zoho.Share) ([]zoho.Result, error) { return nil, unreachable },
		revoke: func(context.Context, string, string) error { return unreachable },
	}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(exampleEventsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases, err := filepath.Glob(filepath.Join("testdata", "cases", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var planned, unplanned int
	for _, file := range append(files, cases...) {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			b := readFile(t, file)
			if strings.Contains(file, "cases") {
				var c mapCase
				if err := json.Unmarshal(b, &c); err != nil {
					t.Fatal(err)
				}
				b = c.Event
			}
			ev := readEvent(t, b)
			keys, with := h.PlanKeys(ev)
			if diff := cmp.Diff(h.OrderingKeys(ev), keys); diff != "" {
				t.Errorf("PlanKeys keys differ from OrderingKeys (-OrderingKeys +PlanKeys):\n%s", diff)
			}
			_, mapErr := m.Mapper.Map(ev)
			if mapErr != nil {
				unplanned++
				if with != nil {
					t.Fatal("a plan for an event the rules cannot map")
				}
				if err := h.Handle(t.Context(), ev); !errors.Is(err, ErrMapper) {
					t.Errorf("Handle = %v, want the mapping error", err)
				}
				return
			}
			planned++
			if with == nil {
				t.Fatal("no plan for a mappable event")
			}
			before := m.maps.Load()
			// Every Zoho call fails: the plan is checked by what Apply
			// reports of each intent, not by writing.
			rep, _ := h.Apply(with(t.Context()), ev)
			if n := m.maps.Load() - before; n != 0 {
				t.Errorf("Apply under the plan mapped the event %d times, want 0", n)
			}
			want, _ := h.Apply(t.Context(), ev)
			if diff := cmp.Diff(intentsOf(want), intentsOf(rep)); diff != "" {
				t.Errorf("report under the plan differs (-without +with):\n%s", diff)
			}
			// A plan made for another event is not used.
			other := ev.Clone()
			other.SetID(ev.ID() + "-other")
			before = m.maps.Load()
			_, _ = h.Apply(with(t.Context()), other)
			if n := m.maps.Load() - before; n != 1 {
				t.Errorf("Apply of another event under this plan mapped %d times, want 1", n)
			}
		})
	}
	if planned == 0 || unplanned == 0 {
		t.Errorf("%d planned and %d unplanned events; the test wants both", planned, unplanned)
	}
}

// intentsOf is what a report says of each intent, without call counts.
func intentsOf(r Report) []string {
	var out []string
	for _, in := range r.Intents {
		out = append(out, in.Rule+" "+in.Module+"/"+in.RecordID+" "+in.Action.String())
	}
	return out
}
