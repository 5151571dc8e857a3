package main

// Graceful shutdown of the real binary: the test owns NATS and the emulator,
// so their state outlives the crmshare process it signals and restarts.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// buildServiceBinary builds this command into a temporary directory.
func buildServiceBinary(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "crmshare")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// binProcess is one crmshare run started from the built binary.
type binProcess struct {
	cmd    *exec.Cmd
	stderr *accLog
	done   chan error
}

// startBinary runs `crmshare run --config cfgPath` with env as its whole
// environment. Cleanup kills it if the test did not stop it.
func startBinary(t testing.TB, bin, cfgPath string, env []string) *binProcess {
	t.Helper()
	p := &binProcess{stderr: &accLog{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "run", "--config", cfgPath)
	p.cmd.Env = env
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start crmshare: %v", err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// signal sends sig and returns the exit code once the process ends.
func (p *binProcess) signal(t testing.TB, sig os.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.ExitCode()
		default:
			t.Fatalf("wait: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("crmshare still running a minute after %v\n%s", sig, p.stderr.text())
	}
	return -1
}

// sigtermSeed is an org without API limits with records records and ten
// users to share each with.
func sigtermSeed(records int) (*zohoemu.Seed, []string, []string) {
	seed := &zohoemu.Seed{
		Org:     &zohoemu.Org{ID: "org-load"},
		Clients: []zohoemu.Client{{ClientID: "1000.LOADCLIENT", ClientSecret: "load-secret", RefreshToken: "1000.load.refresh", UserID: "4150868000000225013", Scopes: []string{"ZohoCRM.share.deals.ALL", "ZohoCRM.users.READ"}}},
		Users:   []zohoemu.User{{ID: "4150868000000225013", Email: "integration@acme.example", FullName: "Integration User", Status: "active", Confirm: true, Profile: "Administrator"}},
	}
	var users, ids []string
	for i := range 10 {
		id := fmt.Sprintf("41508680000016%05d", i)
		seed.Users = append(seed.Users, zohoemu.User{ID: id, Email: fmt.Sprintf("load%d@acme.example", i), FullName: fmt.Sprintf("Load %d", i), Status: "active", Confirm: true})
		users = append(users, id)
	}
	for i := range records {
		id := fmt.Sprintf("41508680000050%05d", i)
		seed.Records = append(seed.Records, zohoemu.Record{Module: "Deals", ID: id, Name: "Load " + id, Owner: "4150868000000225013"})
		ids = append(ids, id)
	}
	return seed, ids, users
}

// sharesApplied counts the direct shares of every record.
func sharesApplied(emu *zohoemu.Emulator) int {
	n := 0
	for _, r := range emu.State().Records {
		n += len(r.Shares)
	}
	return n
}

// TestBinaryGracefulShutdownUnderLoad sends SIGTERM to the real binary while
// it works through 5,000 events, then restarts it: every event is applied
// exactly once, none is dead-lettered, and both runs exit 0. With ack_wait
// longer than the test's wait, an event the first run neither finished nor
// gave back (nak) would not be redelivered in time, so this also checks the
// nak on shutdown.
func TestBinaryGracefulShutdownUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs 5,000 events through it twice")
	}
	t.Parallel() // most of its time is the build and the subprocess
	const records, events = 500, 5000
	seed, ids, users := sigtermSeed(records)
	w := newAccWorld(t, seed)
	// Slow each Zoho call a little so that the signal lands mid-load.
	w.emu.SetFaults(zohoemu.Faults{Latency: zohoemu.Duration(time.Millisecond)})
	bin := buildServiceBinary(t)

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "crmshare.yaml")
	yaml := fmt.Sprintf(`nats:
  url: %s
  consumer:
    ack_wait: 2m
    backoff: [100ms, 200ms]
  concurrency: 16
zoho:
  api_url: %s
  accounts_url: %s
  max_concurrency: 10
telemetry:
  traces: none
  metrics_addr: ""
  log_format: json
  log_level: info
rules:
  - name: grant-deal
    on: {type: deal.assigned}
    action: grant
    module: Deals
    record_id: data.deal_id
    recipients:
      - user: data.user_id
        permission: read_write
`, w.natsURL, w.emuURL, w.emuURL)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"ZOHO_CLIENT_ID=" + seed.Clients[0].ClientID,
		"ZOHO_CLIENT_SECRET=" + seed.Clients[0].ClientSecret,
		"ZOHO_REFRESH_TOKEN=" + seed.Clients[0].RefreshToken,
		"HOME=" + dir,
		"TMPDIR=" + dir,
	}

	first := startBinary(t, bin, cfgPath, env)
	accEventually(t, accWaitLimit, func() (bool, string) {
		_, err := w.js.Consumer(t.Context(), "CRM_EVENTS", "crmshare")
		return err == nil, fmt.Sprintf("durable consumer not created yet (%v):\n%s", err, first.stderr.text())
	})
	evs := make([]event.Event, 0, events)
	for i := range events {
		deal, user := ids[i%records], users[i/records]
		evs = append(evs, newEvent(t, fmt.Sprintf("load-%d", i), "deal.assigned", "urn:acme:load", "Deals/"+deal,
			map[string]any{"deal_id": deal, "user_id": user}))
	}
	last := w.publishAll(t, evs)

	accEventually(t, accWaitLimit, func() (bool, string) {
		n := sharesApplied(w.emu)
		return n >= events/10, fmt.Sprintf("%d of %d applied", n, events)
	})
	if code := first.signal(t, syscall.SIGTERM); code != exitOK {
		t.Fatalf("exit code after SIGTERM = %d, want 0\n%s", code, first.stderr.text())
	}
	atStop := sharesApplied(w.emu)
	if atStop >= events {
		t.Fatalf("all %d events applied before SIGTERM took effect: the test proved nothing about shutdown", events)
	}
	if got := first.stderr.find("consumer stopped", nil); len(got) == 0 {
		t.Errorf("first run did not log a graceful stop:\n%s", first.stderr.text())
	}
	t.Logf("applied at SIGTERM: %d of %d", atStop, events)

	second := startBinary(t, bin, cfgPath, env)
	w.waitSettled(t, "CRM_EVENTS", "crmshare", last)
	if code := second.signal(t, syscall.SIGINT); code != exitOK {
		t.Fatalf("exit code after SIGINT = %d, want 0\n%s", code, second.stderr.text())
	}

	for _, id := range ids {
		if got := w.emu.Shares("Deals", id); len(got) != len(users) {
			t.Errorf("Deals/%s has %d direct shares, want %d", id, len(got), len(users))
		}
	}
	if dl := w.deadLetters(t, "CRM_EVENTS_DLQ"); len(dl) != 0 {
		t.Errorf("%d dead letters, want none; first: %s", len(dl), dl[0].Header.Get("Crmshare-Error"))
	}
	// Each event is one share POST that changes the record; a second POST
	// for the same event would mean it was carried out twice.
	rs := w.emu.Requests()
	if rs.AppliedWrites != events || rs.Writes != events {
		t.Errorf("share writes = %d (applied %d), want %d each", rs.Writes, rs.AppliedWrites, events)
	}
	for _, p := range []*binProcess{first, second} {
		if strings.Contains(p.stderr.text(), seed.Clients[0].ClientSecret) || strings.Contains(p.stderr.text(), seed.Clients[0].RefreshToken) {
			t.Error("a secret appears in the log")
		}
	}
}
