// Command zohoemu serves the Zoho CRM emulator (package zoho/zohoemu) on
// loopback for dev mode, demos and benchmarks:
//
//	go run ./cmd/zohoemu [--addr 127.0.0.1:9000] [--seed FILE] [--latency 100ms]
//	    [--jitter 10ms] [--concurrency N] [--error-rate 0.1] [--drop-rate 0.05] …
//
// It prints its URL and the dev credentials a crmshare config needs, then
// serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	if err := m.ParseFlags(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	<-ctx.Done()
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Main is the program: ParseFlags, then Run, then Close.
type Main struct {
	Addr     string
	SeedFile string // empty: the built-in demo seed
	Config   zohoemu.Config
	Faults   zohoemu.Faults
	Stdout   io.Writer

	Emulator *zohoemu.Emulator // set by Run
	srv      *http.Server
	ln       net.Listener
	done     chan error
}

// NewMain returns a Main with the defaults of the flags.
func NewMain() *Main {
	return &Main{Addr: "127.0.0.1:9000", Stdout: os.Stdout}
}

// ParseFlags reads the command line into m.
func (m *Main) ParseFlags(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("zohoemu", flag.ContinueOnError)
	fs.StringVar(&m.Addr, "addr", m.Addr, "listen address (loopback by default)")
	fs.StringVar(&m.SeedFile, "seed", "", "seed file (default: the built-in demo org, as in deploy/examples/emulator-seed.json)")
	fs.DurationVar(&m.Config.Latency, "latency", 0, "latency added to every CRM call")
	fs.DurationVar(&m.Config.Jitter, "jitter", 0, "random extra latency, 0..jitter")
	fs.IntVar(&m.Config.ConcurrencyLimit, "concurrency", 0, "simultaneous CRM calls allowed (0: the seed org's; <0: unlimited)")
	fs.DurationVar(&m.Config.TokenTTL, "token-ttl", 0, "access token lifetime (default 1h)")
	fs.BoolVar(&m.Config.LegacyTokenReply, "legacy-token-reply", false, "token replies with expires_in in ms plus expires_in_sec")
	errorRate := fs.Float64("error-rate", 0, "share of CRM calls that fail with 500 INTERNAL_ERROR before they are applied")
	afterRate := fs.Float64("after-error-rate", 0, "share of share writes that fail with 500 after they were applied (unknown outcome)")
	limitRate := fs.Float64("429-rate", 0, "share of CRM calls refused with 429 TOO_MANY_REQUESTS")
	dropRate := fs.Float64("drop-rate", 0, "share of CRM calls whose connection is closed without a reply")
	scheduler := fs.Duration("scheduler-window", 0, `after a write, writes to the same record fail with "Scheduler is running" for this long`)
	faultSeed := fs.Uint64("fault-seed", 1, "seed of the fault random source")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	f := zohoemu.Faults{Seed: *faultSeed, SchedulerWindow: zohoemu.Duration(*scheduler)}
	if *errorRate > 0 {
		f.Rules = append(f.Rules, zohoemu.Fault{Code: "INTERNAL_ERROR", Rate: *errorRate})
	}
	if *afterRate > 0 {
		f.Rules = append(f.Rules, zohoemu.Fault{Code: "INTERNAL_ERROR", Rate: *afterRate, After: true})
	}
	if *limitRate > 0 {
		f.Rules = append(f.Rules, zohoemu.Fault{Code: "TOO_MANY_REQUESTS", Rate: *limitRate})
	}
	if *dropRate > 0 {
		f.Rules = append(f.Rules, zohoemu.Fault{Kind: "drop", Rate: *dropRate})
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	m.Faults = f
	return nil
}

// Run loads the seed, starts serving and prints the URL and dev credentials.
// It returns once the listener is open; Close stops it.
func (m *Main) Run(_ context.Context) error {
	var (
		seed *zohoemu.Seed
		err  error
	)
	if m.SeedFile != "" {
		seed, err = zohoemu.ReadSeedFile(m.SeedFile)
	} else {
		seed, err = zohoemu.DemoSeed()
	}
	if err != nil {
		return err
	}
	cfg := m.Config
	cfg.Seed = seed
	if m.Emulator, err = zohoemu.New(cfg); err != nil {
		return err
	}
	m.Emulator.SetFaults(m.Faults)
	if m.ln, err = net.Listen("tcp", m.Addr); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.srv = &http.Server{Handler: m.Emulator, ReadHeaderTimeout: 10 * time.Second}
	m.done = make(chan error, 1)
	go func() { m.done <- m.srv.Serve(m.ln) }()

	fmt.Fprintf(m.Stdout, "zohoemu serving on %s (admin API under %s/_emu/)\n", m.URL(), m.URL())
	fmt.Fprintf(m.Stdout, "  accounts_url: %s\n  api_domain:   %s\n", m.URL(), m.URL())
	for _, c := range seed.Clients {
		// These are made-up development credentials from the seed, printed so a
		// config can be filled in; the emulator holds no real secrets.
		fmt.Fprintf(m.Stdout, "  client_id: %s  client_secret: %s  refresh_token: %s  (user %s)\n",
			c.ClientID, c.ClientSecret, c.RefreshToken, c.UserID)
	}
	return nil
}

// URL is the emulator's base URL, once Run has started it.
func (m *Main) URL() string {
	if m.ln == nil {
		return ""
	}
	return "http://" + m.ln.Addr().String()
}

// Close stops serving and waits for the server goroutine.
func (m *Main) Close() error {
	if m.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := m.srv.Shutdown(ctx)
	if serr := <-m.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
