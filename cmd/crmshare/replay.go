package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"golang.org/x/term"

	"github.com/crmshare/crmshare/consumer"
	"github.com/crmshare/crmshare/handlers"
	"github.com/crmshare/crmshare/zoho"
)

// runReplay is `crmshare replay`: run part of the stream through the share
// handler again, beside a live service, without touching its durable consumer.
func runReplay(ctx context.Context, sio stdio, args []string) int {
	fs := newFlagSet("replay", sio)
	cfgPath := configFlag(fs, sio)
	since := fs.String("since", "", "replay events stored since `TIME` (RFC 3339, or a duration such as 2h meaning that long ago)")
	until := fs.String("until", "", "stop after events stored at `TIME` (RFC 3339 or a duration ago); default: the last event stored when replay starts")
	fromSeq := fs.Uint64("from-seq", 0, "start at stream sequence `N` (instead of, or besides, --since)")
	subject := fs.String("subject", "", "replay only events on this NATS `subject` (wildcards allowed)")
	dryRun := fs.Bool("dry-run", false, "read Zoho but write nothing: print the writes it would make; no ledger, no dead letters")
	rate := fs.Float64("rate", 0, "cap at `N` events per second (0: no cap)")
	force := fs.Bool("force", false, "replay events the ledger lists as applied too, converging each record from what Zoho reports (reads first, writes only differences)")
	batch := fs.Int("batch", 0, "with --force, fold up to `N` consecutive events per record into one write (default 1000; 1 without --force)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !requireFlag(fs, "config", *cfgPath) {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(sio.stderr, "crmshare replay: %v\n", err)
		return exitFail
	}
	now := time.Now()
	rc := consumer.ReplayConfig{StartSeq: *fromSeq, Force: *force, DryRun: *dryRun, Rate: *rate, Batch: *batch}
	var err error
	if rc.Since, err = parseWhen(*since, now); err != nil {
		return fail(fmt.Errorf("--since: %w", err))
	}
	if rc.Until, err = parseWhen(*until, now); err != nil {
		return fail(fmt.Errorf("--until: %w", err))
	}
	if *since == "" && *fromSeq == 0 {
		fmt.Fprintln(sio.stderr, "crmshare replay: --since or --from-seq is required (--since 336h replays the whole default retention)")
		fs.Usage()
		return exitUsage
	}
	if *rate < 0 || *batch < 0 {
		return fail(errors.New("--rate and --batch must not be negative"))
	}
	if rc.Batch == 0 {
		rc.Batch = 1
		if *force {
			rc.Batch = 1000
		}
	}
	if *subject != "" {
		if err := checkSubject(*subject, true); err != nil {
			return fail(fmt.Errorf("--subject %q: %w", *subject, err))
		}
		rc.FilterSubjects = []string{*subject}
	}

	cfg, err := LoadConfigFile(*cfgPath, sio.getenv)
	if err != nil {
		return fail(err)
	}
	s, done, err := startTool(ctx, cfg, sio, serviceOptions{NoListeners: true, NoConsumer: true, TraceWriter: sio.stderr})
	if err != nil {
		return fail(err)
	}
	defer done()

	// The handler's logic stays the same; only what it talks to changes.
	// A dry run records writes below ReadFirst, so it lists only the writes
	// that would change something.
	counted := &countingSharer{next: s.zoho}
	var sharer handlers.Sharer = counted
	var dry *handlers.DryRun
	if *dryRun {
		dry = handlers.NewDryRun(sharer)
		sharer = dry
	}
	if *force {
		sharer = handlers.ReadFirst{Sharer: sharer}
	}
	h, err := handlers.New(handlers.Config{
		Mapper:         s.rules,
		Sharer:         sharer,
		Directory:      s.zoho,
		APIVersion:     cfg.Zoho.APIVersion,
		Logger:         s.logger.With("component", "share"),
		TracerProvider: s.tel.TracerProvider(),
		MeterProvider:  s.tel.MeterProvider(),
	})
	if err != nil {
		return fail(err)
	}
	sum := &replaySummary{h: h, sent: counted}
	n := cfg.NATS
	rc.JS = s.js
	rc.Stream = n.Stream.Name
	rc.Handler = sum
	rc.Ledger = consumer.LedgerConfig{Bucket: n.Ledger.Bucket}
	rc.DeadLetter = consumer.DeadLetterConfig{Stream: n.DeadLetter.Stream, Subject: n.DeadLetter.Subject}
	rc.MaxDeliver = n.Consumer.MaxDeliver
	rc.BackOff = n.Consumer.Backoff
	rc.HandlerTimeout = n.Consumer.AckWait
	rc.Logger = s.logger.With("component", "replay")
	rc.TracerProvider = s.tel.TracerProvider()
	prog := newProgress(sio.stderr)
	rc.Progress = prog.update

	stats, err := consumer.Replay(ctx, rc)
	prog.finish()
	sum.print(sio.stdout, stats, dry)
	if err != nil {
		return fail(err)
	}
	return exitOK
}

// parseWhen reads an RFC 3339 time or a duration meaning that long before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time (2026-11-20T09:00:00Z) or a duration ago (90m, 48h)", s)
	}
	return now.Add(-d), nil
}

// replaySummary hands events to the share handler and adds up its reports.
type replaySummary struct {
	h    *handlers.Handler
	sent *countingSharer

	mu       sync.Mutex
	intents  int
	outcomes map[string]int
	calls    handlers.Calls
}

// Handle applies one event.
func (r *replaySummary) Handle(ctx context.Context, ev event.Event) error {
	rep, err := r.h.Apply(ctx, ev)
	r.add([]handlers.Report{rep}, rep.Calls)
	return err
}

// HandleBatch applies several events at once, folded per record.
func (r *replaySummary) HandleBatch(ctx context.Context, evs []event.Event) []error {
	reps, calls, errs := r.h.ApplyEvents(ctx, evs)
	r.add(reps, calls)
	return errs
}

func (r *replaySummary) add(reps []handlers.Report, calls handlers.Calls) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.outcomes == nil {
		r.outcomes = make(map[string]int)
	}
	for _, rep := range reps {
		for _, ir := range rep.Intents {
			r.intents++
			if ir.Err != nil {
				r.outcomes["error"]++
			} else {
				r.outcomes[ir.Outcome.String()]++
			}
		}
	}
	r.calls.Users += calls.Users
}

// print writes the summary table (and, in a dry run, the writes not sent).
func (r *replaySummary) print(w io.Writer, st consumer.ReplayStats, dry *handlers.DryRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if dry != nil {
		writes := dry.Writes()
		fmt.Fprintf(w, "dry run: %d write(s) not sent\n", len(writes))
		for _, wr := range writes {
			fmt.Fprintf(w, "  would %s\n", wr)
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	seqs := "-"
	if st.FirstSeq > 0 {
		seqs = fmt.Sprintf("%d-%d", st.FirstSeq, st.LastSeq)
	}
	row("events", st.Events)
	row("  stream sequences", seqs)
	row("  handled", st.Handled)
	row("  skipped (in ledger)", st.Skipped)
	row("  dead-lettered", st.DeadLettered)
	row("  retries", st.Retries)
	row("intents", r.intents)
	for _, o := range []string{"applied", "unchanged", "already_accessible", "error"} {
		row("  "+o, r.outcomes[o])
	}
	r.calls.Get, r.calls.Post, r.calls.Put, r.calls.Delete = r.sent.counts()
	row("zoho share calls sent", r.calls.Share())
	row("  GET", r.calls.Get)
	row("  POST", r.calls.Post)
	row("  PUT", r.calls.Put)
	row("  DELETE", r.calls.Delete)
	row("  user lookups", r.calls.Users)
	row("duration", st.Duration.Round(time.Millisecond))
	_ = tw.Flush()
}

// countingSharer counts the share calls actually sent to Zoho (the handler
// counts the calls it asks for, some of which ReadFirst or DryRun keep back).
type countingSharer struct {
	next handlers.Sharer

	mu                     sync.Mutex
	get, post, put, delete int
}

func (c *countingSharer) count(p *int) {
	c.mu.Lock()
	*p++
	c.mu.Unlock()
}

func (c *countingSharer) counts() (get, post, put, del int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.get, c.post, c.put, c.delete
}

// APIVersion returns the wrapped client's dialect.
func (c *countingSharer) APIVersion() string {
	if v, ok := c.next.(interface{ APIVersion() string }); ok {
		return v.APIVersion()
	}
	return ""
}

// Share counts a POST and sends it.
func (c *countingSharer) Share(ctx context.Context, module, recordID string, shares []zoho.Share) ([]zoho.Result, error) {
	c.count(&c.post)
	return c.next.Share(ctx, module, recordID, shares)
}

// UpdateShares counts a PUT and sends it.
func (c *countingSharer) UpdateShares(ctx context.Context, module, recordID string, shares []zoho.Share) ([]zoho.Result, error) {
	c.count(&c.put)
	return c.next.UpdateShares(ctx, module, recordID, shares)
}

// RevokeAll counts a DELETE and sends it.
func (c *countingSharer) RevokeAll(ctx context.Context, module, recordID string) error {
	c.count(&c.delete)
	return c.next.RevokeAll(ctx, module, recordID)
}

// SharedWith counts a GET and sends it.
func (c *countingSharer) SharedWith(ctx context.Context, module, recordID string) ([]zoho.SharedEntry, error) {
	c.count(&c.get)
	return c.next.SharedWith(ctx, module, recordID)
}

// progress draws a progress bar on a terminal and prints a line every 1,000
// events otherwise.
type progress struct {
	w    io.Writer
	tty  bool
	last time.Time
	done int
	seq  uint64
	drew bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *progress) update(rp consumer.ReplayProgress) {
	p.done, p.seq = rp.Done, rp.Sequence
	if !p.tty {
		if rp.Done%1000 == 0 {
			fmt.Fprintf(p.w, "replay: %d events done, at stream sequence %d, %d to go\n", rp.Done, rp.Sequence, rp.Remaining)
		}
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond || rp.Remaining == 0 {
		p.last = now
		total := rp.Done + int(rp.Remaining)
		const width = 30
		filled := width
		if total > 0 {
			filled = width * rp.Done / total
		}
		fmt.Fprintf(p.w, "\r[%s%s] %d/%d  seq %d", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
			rp.Done, total, rp.Sequence)
		p.drew = true
	}
}

func (p *progress) finish() {
	if p.tty && p.drew {
		fmt.Fprintln(p.w)
	}
}
