package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/crmshare/crmshare/handlers"
)

// runRulesTest is `crmshare rules test --config FILE --event EVENT.json`: it
// maps one structured-mode CloudEvent through the config's rules, offline, and
// prints the intents as JSON. Problems outside the rules (an unset Zoho
// secret, say) do not stop it.
func runRulesTest(_ context.Context, sio stdio, args []string) int {
	fs := newFlagSet("rules test", sio)
	file := configFlag(fs, sio)
	eventFile := fs.String("event", "", "structured-mode CloudEvent JSON `file`; - reads stdin")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !requireFlag(fs, "config", *file) || !requireFlag(fs, "event", *eventFile) {
		return exitUsage
	}

	cfg, err := LoadConfigFile(*file, sio.getenv)
	if cfg == nil {
		printProblems(sio.stderr, *file, err)
		return exitFail
	}
	if err != nil {
		var rulesErrs []error
		for _, p := range problemsIn(err) {
			if concernsRules(p) {
				rulesErrs = append(rulesErrs, p)
			}
		}
		if len(rulesErrs) > 0 {
			printProblems(sio.stderr, *file, errors.Join(rulesErrs...))
			return exitFail
		}
	}
	rules, err := handlers.NewRules(cfg.RulesConfig())
	if err != nil { // reported above already; kept for safety
		fmt.Fprintf(sio.stderr, "rules: %v\n", err)
		return exitFail
	}

	ev, err := readEventFile(*eventFile, sio.stdin)
	if err != nil {
		fmt.Fprintf(sio.stderr, "event %s: %v\n", *eventFile, err)
		return exitFail
	}
	intents, err := rules.Map(ev)
	if err != nil {
		fmt.Fprintf(sio.stderr, "event %s: %v\n", ev.ID(), err)
		return exitFail
	}
	if intents == nil {
		intents = []handlers.Intent{}
		fmt.Fprintf(sio.stderr, "no rule maps event %s (type %s)\n", ev.ID(), ev.Type())
	}
	out, err := json.MarshalIndent(intents, "", "  ")
	if err != nil {
		fmt.Fprintf(sio.stderr, "encode intents: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(sio.stdout, "%s\n", out)
	return exitOK
}

// concernsRules reports whether a config problem affects mapping: the rules,
// the API version they are checked against, or the YAML itself.
func concernsRules(err error) bool {
	p, ok := err.(*Problem)
	if !ok {
		return true
	}
	return p.Path == "" || p.Path == "zoho.api_version" || p.Path == "zoho" || strings.HasPrefix(p.Path, "rules")
}

// readEventFile reads and validates a structured-mode CloudEvent.
func readEventFile(name string, stdin io.Reader) (cloudevents.Event, error) {
	var (
		b   []byte
		err error
	)
	if name == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 16<<20))
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return cloudevents.Event{}, fmt.Errorf("read: %w", err)
	}
	var ev cloudevents.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return cloudevents.Event{}, fmt.Errorf("not a structured-mode CloudEvent: %w", err)
	}
	if err := ev.Validate(); err != nil {
		return cloudevents.Event{}, fmt.Errorf("invalid CloudEvent: %w", err)
	}
	return ev, nil
}
