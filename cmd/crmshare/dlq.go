package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crmshare/crmshare/consumer"
)

// dlqTool opens the dead-letter stream of the config at path, beside a live
// service (no listeners, no consumer, no Zoho).
func dlqTool(ctx context.Context, sio stdio, path string) (*consumer.DeadLetters, func(), error) {
	cfg, err := LoadConfigFile(path, sio.getenv)
	if err != nil {
		return nil, nil, err
	}
	s, closeFn, err := startTool(ctx, cfg, sio, serviceOptions{NATSOnly: true, NoListeners: true, NoConsumer: true, TraceWriter: sio.stderr})
	if err != nil {
		return nil, nil, err
	}
	d, err := consumer.OpenDeadLetters(ctx, s.js, consumer.DeadLetterConfig{
		Stream: cfg.NATS.DeadLetter.Stream, Subject: cfg.NATS.DeadLetter.Subject})
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return d, closeFn, nil
}

// withDLQ opens the dead-letter stream for the command called name, runs
// body on it and turns its error into the command's message and exit code.
func withDLQ(ctx context.Context, sio stdio, name, cfgPath string, body func(d *consumer.DeadLetters) error) int {
	d, done, err := dlqTool(ctx, sio, cfgPath)
	if err == nil {
		defer done()
		err = body(d)
	}
	if err != nil {
		fmt.Fprintf(sio.stderr, "crmshare %s: %v\n", name, err)
		return exitFail
	}
	return exitOK
}

// runDLQList is `crmshare dlq list`.
func runDLQList(ctx context.Context, sio stdio, args []string) int {
	fs := newFlagSet("dlq list", sio)
	cfgPath := configFlag(fs, sio)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !requireFlag(fs, "config", *cfgPath) {
		return exitUsage
	}
	return withDLQ(ctx, sio, "dlq list", *cfgPath, func(d *consumer.DeadLetters) error {
		dls, err := d.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(sio.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tID\tREASON\tZOHO CODE")
		for _, dl := range dls {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", dl.Sequence, dl.Time.UTC().Format(time.RFC3339),
				orDash(dl.EventType), orDash(dl.EventID), orDash(truncate(dl.Reason, 100)), orDash(dl.ZohoCode))
		}
		_ = tw.Flush()
		fmt.Fprintf(sio.stdout, "%d dead letter(s)\n", len(dls))
		return nil
	})
}

// runDLQShow is `crmshare dlq show SEQ`.
func runDLQShow(ctx context.Context, sio stdio, args []string) int {
	fs := newFlagSet("dlq show", sio)
	cfgPath := configFlag(fs, sio)
	// SEQ may come before or after the flags.
	var seqText string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		seqText, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if seqText == "" && fs.NArg() == 1 {
		seqText = fs.Arg(0)
	} else if fs.NArg() > 0 {
		seqText = ""
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil || seq == 0 {
		fmt.Fprintln(sio.stderr, "crmshare dlq show: want one dead-letter sequence number: crmshare dlq show --config FILE SEQ")
		return exitUsage
	}
	if !requireFlag(fs, "config", *cfgPath) {
		return exitUsage
	}
	return withDLQ(ctx, sio, "dlq show", *cfgPath, func(d *consumer.DeadLetters) error {
		dl, err := d.Get(ctx, seq)
		if err != nil {
			return err
		}
		printDeadLetter(sio.stdout, dl)
		return nil
	})
}

// printDeadLetter writes a dead letter for a person: where it came from, the
// event, every header and the body.
func printDeadLetter(w io.Writer, dl consumer.DeadLetter) {
	fmt.Fprintf(w, "sequence: %d\nstored:   %s\nsubject:  %s\n", dl.Sequence, dl.Time.UTC().Format(time.RFC3339Nano), dl.Subject)
	fmt.Fprintf(w, "original: %s (stream %s, sequence %d)\n", dl.OriginalSubject, dl.OriginalStream, dl.OriginalSeq)
	if dl.DecodeErr != nil {
		fmt.Fprintf(w, "event:    not a valid cloudevent: %v\n", dl.DecodeErr)
	} else {
		fmt.Fprintf(w, "event:    %s id %s source %s\n", dl.EventType, dl.EventID, dl.EventSource)
	}
	fmt.Fprintln(w, "headers:")
	keys := make([]string, 0, len(dl.Header))
	for k := range dl.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range dl.Header[k] {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintf(w, "body (%d bytes):\n%s\n", len(dl.Data), dl.Data)
}

// runDLQRedrive is `crmshare dlq redrive`.
func runDLQRedrive(ctx context.Context, sio stdio, args []string) int {
	fs := newFlagSet("dlq redrive", sio)
	cfgPath := configFlag(fs, sio)
	seq := fs.Uint64("seq", 0, "redrive the dead letter with this `sequence`")
	all := fs.Bool("all", false, "redrive every dead letter, oldest first")
	dryRun := fs.Bool("dry-run", false, "print what would be republished; change nothing")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !requireFlag(fs, "config", *cfgPath) {
		return exitUsage
	}
	if (*seq == 0) == !*all {
		fmt.Fprintln(sio.stderr, "crmshare dlq redrive: give exactly one of --seq N and --all")
		fs.Usage()
		return exitUsage
	}
	return withDLQ(ctx, sio, "dlq redrive", *cfgPath, func(d *consumer.DeadLetters) error {
		seqs := []uint64{*seq}
		if *all {
			dls, err := d.List(ctx)
			if err != nil {
				return err
			}
			seqs = seqs[:0]
			for _, dl := range dls {
				seqs = append(seqs, dl.Sequence)
			}
		}
		n := 0
		for _, q := range seqs {
			if *dryRun {
				res, err := d.RedrivePlan(ctx, q)
				if err != nil {
					return err
				}
				fmt.Fprintf(sio.stdout, "would redrive %d: %s id %s to %s with Nats-Msg-Id %s\n",
					q, orDash(res.DeadLetter.EventType), orDash(res.DeadLetter.EventID), res.Subject, res.MsgID)
				continue
			}
			res, err := d.Redrive(ctx, q)
			if err != nil {
				return fmt.Errorf("after %d redriven: %w", n, err)
			}
			n++
			fmt.Fprintf(sio.stdout, "redrove %d: %s id %s to %s: stream %s sequence %d%s\n",
				q, orDash(res.DeadLetter.EventType), orDash(res.DeadLetter.EventID), res.Subject, res.Stream, res.Sequence, dupNote(res.Duplicate))
		}
		if !*dryRun {
			fmt.Fprintf(sio.stdout, "%d dead letter(s) redriven\n", n)
		}
		return nil
	})
}

// runDLQPurge is `crmshare dlq purge`.
func runDLQPurge(ctx context.Context, sio stdio, args []string) int {
	fs := newFlagSet("dlq purge", sio)
	cfgPath := configFlag(fs, sio)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !requireFlag(fs, "config", *cfgPath) {
		return exitUsage
	}
	return withDLQ(ctx, sio, "dlq purge", *cfgPath, func(d *consumer.DeadLetters) error {
		n, err := d.Purge(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(sio.stdout, "purged %d dead letter(s)\n", n)
		return nil
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
