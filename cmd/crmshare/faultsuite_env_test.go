package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/crmshare/crmshare/consumer"
)

// buildCrmshare builds this command into a temporary directory once per test
// and returns the binary's path. It builds with -race when the test binary
// was, which also reuses the packages the test build compiled.
func buildCrmshare(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "crmshare")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(t.Context(), goBin, append(args, ".")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out.Bytes())
	}
	return bin
}

// raceEnabled reports whether the running test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// natsHarness is a JetStream server run by the test process on a store dir
// that outlives it, so that it can be restarted on the same store and port
// while the service keeps running.
type natsHarness struct {
	dir  string
	port int
	srv  *server.Server
}

// startNATSHarness starts the server on a free loopback port; the test's
// cleanup stops it.
func startNATSHarness(t *testing.T) *natsHarness {
	t.Helper()
	h := &natsHarness{dir: t.TempDir(), port: -1}
	if err := h.start(); err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(h.stop)
	return h
}

func (h *natsHarness) start() error {
	srv, err := consumer.StartEmbedded(consumer.EmbeddedConfig{StoreDir: h.dir, Host: "127.0.0.1", Port: h.port, ServerName: "faultsuite"})
	if err != nil {
		return err
	}
	h.srv = srv
	if h.port == -1 {
		_, p, err := net.SplitHostPort(srv.Addr().String())
		if err != nil {
			return fmt.Errorf("nats listen address: %w", err)
		}
		if h.port, err = strconv.Atoi(p); err != nil {
			return fmt.Errorf("nats listen port: %w", err)
		}
	}
	return nil
}

func (h *natsHarness) stop() {
	if h.srv != nil {
		h.srv.Shutdown()
		h.srv.WaitForShutdown()
		h.srv = nil
	}
}

// restart stops the server and starts it again on the same store and port.
// Another process may take the port in between; it retries briefly.
func (h *natsHarness) restart(ctx context.Context) error {
	h.stop()
	var err error
	for ctx.Err() == nil {
		if err = h.start(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("restart nats on port %d: %w", h.port, errors.Join(err, ctx.Err()))
}

// url is the client URL, stable across restarts.
func (h *natsHarness) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", h.port) }

// serviceProc runs the built binary as `crmshare run` subprocesses, one at a
// time, with their output appended to one log file.
type serviceProc struct {
	bin, cfg, logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	err    error         // cmd.Wait's result, once exited
	starts int
}

// start launches a new process; the previous one must have exited.
func (p *serviceProc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("open service log: %v", err)
	}
	p.mu.Lock()
	p.starts++
	fmt.Fprintf(f, "=== faultsuite: start #%d at %s\n", p.starts, time.Now().Format(time.RFC3339Nano))
	p.mu.Unlock()
	// Not CommandContext: the test decides how each process ends.
	cmd := exec.Command(p.bin, "run", "--config", p.cfg)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "GORACE=exitcode=66", "CRMSHARE_CONFIG=")
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
}

// running returns an error when the current process has exited.
func (p *serviceProc) running() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		return fmt.Errorf("crmshare run exited on its own: %v", p.err)
	default:
		return nil
	}
}

// kill ends the current process with SIGKILL and waits for it.
func (p *serviceProc) kill(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill crmshare: %v", err)
	}
	<-exited
}

// stop sends SIGINT, as a terminal would, and returns the exit error (nil for
// exit code 0). After timeout it kills the process.
func (p *serviceProc) stop(timeout time.Duration) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("interrupt crmshare: %w", err)
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("crmshare did not stop within %v of SIGINT", timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// tail returns the last n bytes of the service log, for failure messages.
func (p *serviceProc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read service log: %v)", err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
