package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/crmshare/crmshare/consumer"
	"github.com/crmshare/crmshare/handlers"
)

// eventShow is what `crmshare event show --json` prints.
type eventShow struct {
	ID          string                     `json:"id"`
	Source      string                     `json:"source,omitempty"`
	Verdict     string                     `json:"verdict"`
	Scanned     uint64                     `json:"scanned"`
	Copies      []eventShowCopy            `json:"copies"`
	Consumer    *consumer.ConsumerPosition `json:"consumer,omitempty"`
	Applied     []consumer.AppliedEntry    `json:"applied"`
	DeadLetters []eventShowDeadLetter      `json:"dead_letters"`
}

type eventShowCopy struct {
	Sequence uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	Subject  string            `json:"subject"`
	MsgID    string            `json:"msg_id,omitempty"`
	Type     string            `json:"type"`
	Source   string            `json:"source"`
	Delivery string            `json:"delivery,omitempty"`
	Intents  []handlers.Intent `json:"intents"`
	RulesErr string            `json:"rules_error,omitempty"`
}

type eventShowDeadLetter struct {
	Sequence    uint64    `json:"seq"`
	Time        time.Time `json:"time"`
	OriginalSeq uint64    `json:"original_seq"`
	Reason      string    `json:"reason"`
	ZohoCode    string    `json:"zoho_code,omitempty"`
	Rule        string    `json:"rule,omitempty"`
}

// runEventShow is `crmshare event show --config FILE --id ID [--source S]`:
// what became of one event, read beside a running service from the stream,
// the consumer's position, the ledger and the dead-letter stream, with the
// intents the rules make of it now.
func runEventShow(ctx context.Context, sio stdio, args []string) int {
	fs := newFlagSet("event show", sio)
	cfgPath := configFlag(fs, sio)
	id := fs.String("id", "", "the CloudEvent `id` (required)")
	source := fs.String("source", "", "the CloudEvent `source`; empty matches any")
	fromSeq := fs.Uint64("from-seq", 0, "start the scan of the stream at this `sequence` (default: its first message)")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !requireFlag(fs, "config", *cfgPath) || !requireFlag(fs, "id", *id) {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(sio.stderr, "crmshare event show: %v\n", err)
		return exitFail
	}
	cfg, err := LoadConfigFile(*cfgPath, sio.getenv)
	if err != nil {
		return fail(err)
	}
	rules, err := handlers.NewRules(cfg.RulesConfig())
	if err != nil {
		return fail(err)
	}
	s, done, err := startTool(ctx, cfg, sio, serviceOptions{NATSOnly: true, NoListeners: true, NoConsumer: true, TraceWriter: sio.stderr})
	if err != nil {
		return fail(err)
	}
	defer done()
	rep, err := consumer.FindEvent(ctx, consumer.EventQuery{
		JS: s.js, Stream: cfg.NATS.Stream.Name, Durable: cfg.NATS.Consumer.Durable, Bucket: cfg.NATS.Ledger.Bucket,
		DeadLetter: consumer.DeadLetterConfig{Stream: cfg.NATS.DeadLetter.Stream, Subject: cfg.NATS.DeadLetter.Subject},
		ID:         *id, Source: *source, FromSeq: *fromSeq,
	})
	if err != nil {
		return fail(err)
	}
	out := eventShow{ID: rep.ID, Source: *source, Scanned: rep.Scanned, Consumer: rep.Consumer,
		Applied: rep.Applied, Copies: []eventShowCopy{}, DeadLetters: []eventShowDeadLetter{}}
	if out.Applied == nil {
		out.Applied = []consumer.AppliedEntry{}
	}
	for _, c := range rep.Copies {
		sc := eventShowCopy{Sequence: c.Sequence, Time: c.Time, Subject: c.Subject, MsgID: c.MsgID,
			Type: c.Event.Type(), Source: c.Event.Source(), Delivery: c.Delivery, Intents: []handlers.Intent{}}
		if in, err := rules.Map(c.Event); err != nil {
			sc.RulesErr = err.Error()
		} else if in != nil {
			sc.Intents = in
		}
		out.Copies = append(out.Copies, sc)
	}
	for _, dl := range rep.DeadLetters {
		out.DeadLetters = append(out.DeadLetters, eventShowDeadLetter{Sequence: dl.Sequence, Time: dl.Time,
			OriginalSeq: dl.OriginalSeq, Reason: dl.Reason, ZohoCode: dl.ZohoCode, Rule: dl.Rule})
	}
	out.Verdict = verdict(rep)
	if *asJSON {
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(sio.stdout, "%s\n", b)
		return exitOK
	}
	printEventShow(sio.stdout, out)
	return exitOK
}

// verdict sums the report up in a few words.
func verdict(rep *consumer.EventReport) string {
	switch {
	case len(rep.Applied) > 0:
		return "applied" // or nothing to do: the rules made no intent of it
	case len(rep.DeadLetters) > 0:
		return "dead-lettered"
	case len(rep.Copies) == 0:
		return "not found in the stream"
	}
	for _, c := range rep.Copies {
		if c.Delivery == "pending" || c.Delivery == "delivered" || c.Delivery == "" {
			return "not applied yet"
		}
	}
	// Settled, yet neither recorded nor dead-lettered: the ledger entry
	// expired (TTL), its write failed, or the dead letter was purged.
	return "settled, no record left"
}

func printEventShow(w io.Writer, e eventShow) {
	fmt.Fprintf(w, "event %s", e.ID)
	if e.Source != "" {
		fmt.Fprintf(w, " (source %s)", e.Source)
	}
	fmt.Fprintf(w, ": %s\n", e.Verdict)
	fmt.Fprintf(w, "stream: %d message(s) scanned, %d carry it\n", e.Scanned, len(e.Copies))
	for _, c := range e.Copies {
		fmt.Fprintf(w, "  seq %d  %s  %s  type %s  source %s", c.Sequence, c.Time.UTC().Format(time.RFC3339), c.Subject, c.Type, c.Source)
		if c.Delivery != "" {
			fmt.Fprintf(w, "  [%s]", c.Delivery)
		}
		fmt.Fprintln(w)
		switch {
		case c.RulesErr != "":
			fmt.Fprintf(w, "    rules: %s\n", c.RulesErr)
		case len(c.Intents) == 0:
			fmt.Fprintln(w, "    rules: no rule matches it")
		}
		for _, in := range c.Intents {
			fmt.Fprintf(w, "    intent: %s\n", describeIntent(in))
		}
	}
	if c := e.Consumer; c != nil {
		fmt.Fprintf(w, "consumer %s: ack floor %d, delivered up to %d, %d not delivered, %d in flight\n",
			c.Name, c.AckFloor, c.Delivered, c.NumPending, c.NumAckPending)
	} else {
		fmt.Fprintln(w, "consumer: none")
	}
	if len(e.Applied) == 0 {
		fmt.Fprintln(w, "ledger: not listed")
	}
	for _, a := range e.Applied {
		fmt.Fprintf(w, "ledger: applied %s (stream %s seq %d, source %s)\n", a.AppliedAt.UTC().Format(time.RFC3339Nano), a.Stream, a.Sequence, a.Source)
	}
	if len(e.DeadLetters) == 0 {
		fmt.Fprintln(w, "dead letters: none")
	}
	for _, dl := range e.DeadLetters {
		fmt.Fprintf(w, "dead letter: seq %d  %s  from seq %d: %s", dl.Sequence, dl.Time.UTC().Format(time.RFC3339), dl.OriginalSeq, dl.Reason)
		if dl.ZohoCode != "" {
			fmt.Fprintf(w, " (zoho %s)", dl.ZohoCode)
		}
		fmt.Fprintln(w)
	}
}

// describeIntent renders an intent on one line: action, record and recipients.
func describeIntent(in handlers.Intent) string {
	var rs []string
	for _, g := range in.Recipients {
		r := g.Recipient.String()
		if g.Email != "" {
			r = g.Email
		}
		if in.Action != handlers.ActionRevoke {
			r += " " + g.Permission.String()
			if g.ShareRelated {
				r += " with related records"
			}
		}
		rs = append(rs, r)
	}
	s := fmt.Sprintf("%s %s/%s (rule %s)", in.Action, in.Module, in.RecordID, in.Rule)
	if len(rs) > 0 {
		s += ": " + strings.Join(rs, ", ")
	}
	return s
}
