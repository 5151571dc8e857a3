package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/crmshare/crmshare/consumer"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// benchInfraEnv is set in the environment of the bench's infrastructure
// process. The command does not read it; a test binary, whose own flags
// differ, does (see TestMain) to run `bench --serve-infra` instead of tests.
const benchInfraEnv = "CRMSHARE_BENCH_INFRA"

// benchInfraInfo is the line the infrastructure process prints once it
// serves: where its NATS server and emulator listen, and the emulator's
// made-up credentials (over the private pipe, never argv or a log).
type benchInfraInfo struct {
	NATSURL      string `json:"nats_url"`
	ZohoURL      string `json:"zoho_url"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RefreshToken string `json:"refresh_token"`
}

// serveBenchInfra is `crmshare bench --serve-infra`: the bench's embedded
// JetStream server and Zoho emulator, seeded for the mix, in a process of
// their own so the bench process holds only the service. It prints a
// benchInfraInfo line and serves until stdin closes or ctx ends. Besides the
// emulator, its HTTP server answers GET /_bench/calls (the call counts),
// POST /_bench/reset (zero them) and POST /_bench/emu-reset (the emulator's
// Reset, then zero them).
func serveBenchInfra(ctx context.Context, sio stdio, o benchOptions) error {
	plan := newBenchPlan(o.mix, o.events)
	creds := newBenchCreds()
	emu, err := zohoemu.New(zohoemu.Config{Seed: plan.seed(creds, o.zohoConcurrency), Latency: o.latency, ConcurrencyLimit: o.zohoConcurrency})
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	counter := newCallCounter(emu)
	mux := http.NewServeMux()
	// With --infra-cpuprofile, the drain is profiled: from the reset of the
	// counts before it to their first reading after it; and each baseline
	// loop from the emulator reset before it to the next reset or the end:
	// the bare loop to FILE.baseline, the one with a ledger to
	// FILE.ledger-baseline.
	var prof struct {
		sync.Mutex
		f         *os.File
		drained   bool // the drain's profile was started
		baselines int  // baseline profiles started
	}
	startProfile := func(name string, drain bool) {
		prof.Lock()
		defer prof.Unlock()
		if prof.f != nil || (drain && prof.drained) {
			return
		}
		prof.drained = prof.drained || drain
		f, err := os.Create(name)
		if err != nil {
			fmt.Fprintf(sio.stderr, "infra cpu profile: %v\n", err)
			return
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			fmt.Fprintf(sio.stderr, "infra cpu profile: %v\n", err)
			return
		}
		prof.f = f
	}
	stopProfile := func() {
		prof.Lock()
		defer prof.Unlock()
		if prof.f != nil {
			pprof.StopCPUProfile()
			_ = prof.f.Close()
			prof.f = nil
		}
	}
	defer stopProfile()
	mux.HandleFunc("GET /_bench/calls", func(w http.ResponseWriter, _ *http.Request) {
		stopProfile()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(counter.snapshot())
	})
	mux.HandleFunc("POST /_bench/reset", func(w http.ResponseWriter, _ *http.Request) {
		if o.infraCPUProfile != "" {
			startProfile(o.infraCPUProfile, true)
		}
		counter.reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_bench/emu-reset", func(w http.ResponseWriter, _ *http.Request) {
		if o.infraCPUProfile != "" {
			stopProfile()
			prof.Lock()
			name := o.infraCPUProfile + ".baseline"
			if prof.baselines++; prof.baselines > 1 {
				name = o.infraCPUProfile + ".ledger-baseline"
			}
			prof.Unlock()
			startProfile(name, false)
		}
		emu.Reset()
		counter.reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/", counter)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("emulator listen: %w", err)
	}
	emuSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- emuSrv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = emuSrv.Shutdown(sctx)
		<-served
	}()

	store, err := os.MkdirTemp("", "crmshare-bench-")
	if err != nil {
		return fmt.Errorf("bench store: %w", err)
	}
	defer os.RemoveAll(store)
	ns, err := consumer.StartEmbedded(consumer.EmbeddedConfig{StoreDir: store, Host: "127.0.0.1", Port: -1})
	if err != nil {
		return err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()

	info := benchInfraInfo{NATSURL: ns.ClientURL(), ZohoURL: "http://" + ln.Addr().String(),
		ClientID: creds.clientID, ClientSecret: creds.secret, RefreshToken: creds.refresh}
	if err := json.NewEncoder(sio.stdout).Encode(info); err != nil {
		return fmt.Errorf("bench infra: %w", err)
	}
	stdinClosed := make(chan struct{})
	go func() {
		defer close(stdinClosed)
		_, _ = io.Copy(io.Discard, sio.stdin)
	}()
	select {
	case <-stdinClosed:
	case <-ctx.Done():
	}
	return nil
}

// benchInfra is the parent's handle on the infrastructure process.
type benchInfra struct {
	info  benchInfraInfo
	cmd   *exec.Cmd
	stdin io.WriteCloser
	hc    *http.Client
}

// startBenchInfra starts `crmshare bench --serve-infra` for o as a child of
// this process (the same executable) and waits for its benchInfraInfo.
func startBenchInfra(ctx context.Context, sio stdio, o benchOptions) (*benchInfra, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench infra: %w", err)
	}
	cmd := exec.Command(exe, "bench", "--serve-infra", "--mix", o.mix, "--events", strconv.Itoa(o.events),
		"--latency", o.latency.String(), "--zoho-concurrency", strconv.Itoa(o.zohoConcurrency))
	if o.infraCPUProfile != "" {
		cmd.Args = append(cmd.Args, "--infra-cpuprofile", o.infraCPUProfile)
	}
	cmd.Env = append(os.Environ(), benchInfraEnv+"=1")
	cmd.Stderr = sio.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("bench infra: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench infra: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench infra: %w", err)
	}
	b := &benchInfra{cmd: cmd, stdin: stdin, hc: &http.Client{Timeout: 30 * time.Second}}
	line := make(chan error, 1)
	go func() {
		l, err := bufio.NewReader(stdout).ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(l, &b.info)
		}
		line <- err
		// Drain the rest so the child never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err = <-line:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		b.close()
		return nil, fmt.Errorf("bench infra: no address line: %w", err)
	}
	return b, nil
}

// close ends the child (closing its stdin, then killing it if it lingers)
// and waits for it.
func (b *benchInfra) close() {
	b.stdin.Close()
	waited := make(chan error, 1)
	go func() { waited <- b.cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(15 * time.Second):
		_ = b.cmd.Process.Kill()
		<-waited
	}
}

// calls reads the infrastructure's call counts.
func (b *benchInfra) calls(ctx context.Context) (benchCalls, error) {
	var out benchCalls
	body, err := b.admin(ctx, http.MethodGet, "/_bench/calls")
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return out, fmt.Errorf("bench calls: %w", err)
	}
	return out, nil
}

// resetCalls zeroes the call counts.
func (b *benchInfra) resetCalls(ctx context.Context) error {
	_, err := b.admin(ctx, http.MethodPost, "/_bench/reset")
	return err
}

// resetEmulator resets the emulator to its seed and zeroes the call counts.
func (b *benchInfra) resetEmulator(ctx context.Context) error {
	_, err := b.admin(ctx, http.MethodPost, "/_bench/emu-reset")
	return err
}

func (b *benchInfra) admin(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, b.info.ZohoURL+path, nil)
	if err != nil {
		return nil, fmt.Errorf("bench infra %s: %w", path, err)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench infra %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("bench infra %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("bench infra %s: status %d: %s", path, resp.StatusCode, bytes.TrimSpace(body))
	}
	return body, nil
}
