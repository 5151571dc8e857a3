// Command crmshare turns business events into record-level sharing in Zoho CRM.
//
//	crmshare run --config FILE
//	crmshare publish --config FILE --event EVENT.json
//	crmshare rules test --config FILE --event EVENT.json
//	crmshare config check --config FILE
//	crmshare replay --config FILE --since TIME [--force] [--dry-run]
//	crmshare dlq list|show|redrive|purge --config FILE
//	crmshare event show --config FILE --id ID [--source S]
//	crmshare help
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes of run.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed: bad config, bad event, rule error
	exitUsage = 2 // the command line is wrong
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// stdio is what a command may touch of its process: the standard streams and
// the environment. Commands never read os.Stdin, os.Getenv and the like
// directly, so tests run them in-process.
type stdio struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// command is one subcommand. To add one, write its function in its own file
// (cmd_<name>.go or <area>.go) and add a line to commands.
type command struct {
	name    string // the words that select it, e.g. "rules test"
	args    string // the arguments, for usage
	summary string
	run     func(ctx context.Context, sio stdio, args []string) int
}

// commands is the dispatch table, in the order usage lists it.
func commands() []command {
	return []command{
		{"run", "--config FILE", "run the service: consume events and share records in Zoho until SIGINT/SIGTERM", runRun},
		{"publish", "--config FILE (--event FILE | --type T --source S [--subject X] [--data @file.json])", "publish one CloudEvent to the stream", runPublish},
		{"rules test", "--config FILE --event EVENT.json", "map one CloudEvent through the rules and print the intents (offline)", runRulesTest},
		{"config check", "--config FILE", "validate the whole config file and report every problem (offline)", runConfigCheck},
		{"replay", "--config FILE --since TIME [--until TIME] [--from-seq N] [--subject S] [--dry-run] [--rate N] [--force]", "run stored events through the share handler again, beside the service", runReplay},
		{"dlq list", "--config FILE", "list dead letters: sequence, time, type, id, reason, Zoho code", runDLQList},
		{"dlq show", "--config FILE SEQ", "show one dead letter: its headers and the event", runDLQShow},
		{"dlq redrive", "--config FILE (--seq N | --all) [--dry-run]", "republish dead letters to their original subject and remove them", runDLQRedrive},
		{"dlq purge", "--config FILE", "delete every dead letter", runDLQPurge},
		{"event show", "--config FILE --id ID [--source S] [--from-seq N] [--json]", "what became of one event: its copies in the stream, the consumer's position, the ledger, dead letters and its intents", runEventShow},
		{"bench", "[--events N] [--mix grants|replay|mixed|hot] [--latency D] [--zoho-concurrency N] [--baseline] [--json]", "measure throughput, Zoho calls, latency, CPU and memory on an in-process stream and emulator", runBench},
		{"help", "", "show this help", runHelp},
	}
}

// run is the whole program: it dispatches args to a command and returns the
// exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	sio := stdio{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	cmd, rest, ok := lookupCommand(args)
	if !ok {
		if len(args) > 0 {
			fmt.Fprintf(stderr, "crmshare: unknown command %q\n\n", strings.Join(args[:min(len(args), 2)], " "))
		}
		usage(stderr)
		return exitUsage
	}
	return cmd.run(ctx, sio, rest)
}

// lookupCommand finds the command whose words start args, the longest first.
func lookupCommand(args []string) (command, []string, bool) {
	var (
		best  command
		words int
	)
	for _, c := range commands() {
		w := strings.Fields(c.name)
		if len(w) <= len(args) && len(w) > words && equalWords(w, args[:len(w)]) {
			best, words = c, len(w)
		}
	}
	return best, args[min(words, len(args)):], words > 0
}

func equalWords(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: crmshare <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
		if c.args != "" {
			fmt.Fprintf(w, "  %-14s   crmshare %s %s\n", "", c.name, c.args)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "--config defaults to $CRMSHARE_CONFIG. Run crmshare <command> -h for its flags.")
}

func runHelp(_ context.Context, sio stdio, _ []string) int {
	usage(sio.stdout)
	return exitUsage
}

// newFlagSet makes a flag set for a command that writes its errors to stderr.
func newFlagSet(name string, sio stdio) *flag.FlagSet {
	fs := flag.NewFlagSet("crmshare "+name, flag.ContinueOnError)
	fs.SetOutput(sio.stderr)
	return fs
}

// parseFlags parses args; ok is false when the command should stop with code.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments: %s\n", fs.Name(), strings.Join(fs.Args(), " "))
		fs.Usage()
		return exitUsage, false
	}
	return 0, true
}

// configFlag registers --config with its default from $CRMSHARE_CONFIG.
func configFlag(fs *flag.FlagSet, sio stdio) *string {
	return fs.String("config", sio.getenv("CRMSHARE_CONFIG"), "config `file` (YAML); default $CRMSHARE_CONFIG")
}

// requireFlag reports a missing flag.
func requireFlag(fs *flag.FlagSet, name, value string) bool {
	if value != "" {
		return true
	}
	fmt.Fprintf(fs.Output(), "%s: --%s is required\n", fs.Name(), name)
	fs.Usage()
	return false
}
