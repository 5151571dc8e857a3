package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// runConfigCheck is `crmshare config check --config FILE`: it loads and
// validates the whole file offline (no NATS, no Zoho) and prints a summary,
// or every problem and exit code 1.
func runConfigCheck(_ context.Context, sio stdio, args []string) int {
	fs := newFlagSet("config check", sio)
	file := configFlag(fs, sio)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !requireFlag(fs, "config", *file) {
		return exitUsage
	}
	cfg, err := LoadConfigFile(*file, sio.getenv)
	if err != nil {
		printProblems(sio.stderr, *file, err)
		return exitFail
	}
	fmt.Fprintf(sio.stdout, "config OK: %s\n", *file)
	summarize(sio.stdout, cfg)
	return exitOK
}

// problemsIn lists the problems inside a LoadConfig error.
func problemsIn(err error) []error {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		return joined.Unwrap()
	}
	var p *Problem
	if errors.As(err, &p) {
		return []error{p}
	}
	return []error{err}
}

func printProblems(w io.Writer, file string, err error) {
	ps := problemsIn(err)
	noun := "problems"
	if len(ps) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(w, "config %s: %d %s:\n", file, len(ps), noun)
	for _, p := range ps {
		fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(p.Error(), "\n", "\n    "))
	}
}

// summarize prints what the config will do, one line per section; secrets are
// never printed.
func summarize(w io.Writer, c *Config) {
	n := c.NATS
	fmt.Fprintf(w, "  nats:      %s; stream %s %v (create: %t, max_age %s); consumer %s (ack_wait %s, max_deliver %d); concurrency %d; dead letters %s (%s.>)\n",
		n.URL, n.Stream.Name, n.Stream.Subjects, n.Stream.Create, n.Stream.MaxAge, n.Consumer.Durable,
		n.Consumer.AckWait, n.Consumer.MaxDeliver, n.Concurrency, n.DeadLetter.Stream, n.DeadLetter.Subject)
	z := c.Zoho
	target := "data centre " + z.DataCenter
	switch {
	case z.Emulator:
		target = "built-in emulator"
		if z.EmulatorSeed != "" {
			target += " (seed " + z.EmulatorSeed + ")"
		}
	case z.APIURL != "":
		target = z.APIURL
	}
	fmt.Fprintf(w, "  zoho:      %s, API %s, client %s, timeout %s, max %d calls in flight\n",
		target, z.APIVersion, z.ClientID, z.Timeout, z.MaxConcurrency)
	t := c.Telemetry
	metrics := t.MetricsAddr
	if metrics == "" {
		metrics = "off"
	}
	fmt.Fprintf(w, "  telemetry: traces %s, metrics %s, logs %s/%s\n", t.Traces, metrics, t.LogFormat, t.LogLevel)
	if c.Ingress.Addr == "" {
		fmt.Fprintln(w, "  ingress:   off")
	} else {
		fmt.Fprintf(w, "  ingress:   %s -> %s.<type>\n", c.Ingress.Addr, c.Ingress.SubjectPrefix)
	}
	fmt.Fprintf(w, "  rules:     %d\n", len(c.Rules))
	for _, r := range c.Rules {
		fmt.Fprintf(w, "    %-32s on %-24s %s %s\n", r.Name, r.On.Type, r.Action, r.Module)
	}
}
