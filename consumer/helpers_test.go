package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const waitLimit = 15 * time.Second

// testJS is an in-process JetStream server with a client connection.
type testJS struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startJS(t testing.TB) *testJS {
	t.Helper()
	s, err := StartEmbedded(EmbeddedConfig{StoreDir: t.TempDir(), Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return &testJS{srv: s, nc: nc, js: js}
}

// testConfig is a Config with short delays for tests.
func (tj *testJS) config(h Handler) Config {
	return Config{
		JS:   tj.js,
		Conn: tj.nc,
		Consumer: ConsumerConfig{
			AckWait:    5 * time.Second,
			MaxDeliver: 4,
			BackOff:    []time.Duration{50 * time.Millisecond, 100 * time.Millisecond},
		},
		Concurrency:      4,
		Handler:          h,
		ProbeInterval:    20 * time.Millisecond,
		MaxProbeInterval: 100 * time.Millisecond,
		ShutdownGrace:    5 * time.Second,
		WatchInterval:    100 * time.Millisecond,
	}
}

// running is a Consumer whose Run goroutine the test owns.
type running struct {
	c        *Consumer
	cancel   context.CancelFunc
	finished chan struct{} // closed when Run returned
	err      error         // Run's result, set before finished closes
}

// stop cancels Run and returns its result.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.finished:
		return r.err
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

// startConsumer sets up and runs a consumer until the test ends.
func startConsumer(t testing.TB, cfg Config) *running {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.Setup(t.Context()); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, finished: make(chan struct{})}
	go func() {
		defer close(r.finished)
		r.err = c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.finished
	})
	return r
}

// newEvent builds a valid CloudEvent with JSON data.
func newEvent(t testing.TB, id, typ, subject string) event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("/test/crm")
	ev.SetType(typ)
	ev.SetSubject(subject)
	ev.SetTime(time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC))
	if err := ev.SetData("application/json", map[string]string{"record": subject}); err != nil {
		t.Fatal(err)
	}
	return ev
}

func (tj *testJS) publish(t testing.TB, subject string, ev event.Event, mode Mode) *jetstream.PubAck {
	t.Helper()
	ack, err := Publish(t.Context(), tj.js, subject, ev, mode)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return ack
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func (tj *testJS) consumerInfo(t testing.TB, stream, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := tj.js.Consumer(t.Context(), stream, durable)
	if err != nil {
		t.Fatalf("consumer %s: %v", durable, err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	return info
}

// settledAll reports whether the durable acked or terminated n messages and
// holds none unacknowledged.
func (tj *testJS) settledAll(t testing.TB, n uint64) func() bool {
	return func() bool {
		info := tj.consumerInfo(t, "CRM_EVENTS", "crmshare")
		return info.AckFloor.Stream == n && info.NumAckPending == 0 && info.NumPending == 0
	}
}

// deadLetters returns the messages in the dead-letter stream.
func (tj *testJS) deadLetters(t testing.TB) []*jetstream.RawStreamMsg {
	t.Helper()
	st, err := tj.js.Stream(t.Context(), "CRM_EVENTS_DLQ")
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatalf("dead-letter stream info: %v", err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// calls records handler invocations.
type calls struct {
	mu  sync.Mutex
	got []call
}

type call struct {
	id        string
	delivered uint64
	at        time.Time
}

func (c *calls) add(ctx context.Context, ev event.Event) {
	d, _ := DeliveryFrom(ctx)
	c.mu.Lock()
	c.got = append(c.got, call{id: ev.ID(), delivered: d.NumDelivered, at: time.Now()})
	c.mu.Unlock()
}

func (c *calls) list() []call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]call(nil), c.got...)
}

func (c *calls) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// keyedHandler adds ordering keys to a HandlerFunc.
type keyedHandler struct {
	HandlerFunc
	keys func(ev event.Event) []string
}

func (h keyedHandler) OrderingKeys(ev event.Event) []string { return h.keys(ev) }

func eventID(i int) string { return fmt.Sprintf("evt-%03d", i) }
