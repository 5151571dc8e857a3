package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ledger remembers applied events in a key-value bucket keyed by EventKey, so
// a redelivery, a replay or the same event republished under another
// Nats-Msg-Id is not handed to the Handler twice. The bucket's TTL bounds it.
//
// Reads are batched: the keys that workers ask for while a lookup is out go
// together in the next one, a single JetStream direct get for the last
// message of many subjects (multi_last), so a backlog costs the server one
// request per batch instead of one per event. Where the server refuses that
// (a stream without direct get, a server before 2.11, a stream restarting),
// the keys are read one by one for a minute before multi_last is tried
// again; a reply cut short is completed one by one.
type ledger struct {
	kv  jetstream.KeyValue
	nc  *nats.Conn // nil: read key by key
	log *slog.Logger
	// getSubject is the bucket stream's direct get API subject, and prefix
	// the subject prefix of its keys.
	getSubject, prefix string

	mu      sync.Mutex
	queue   []*ledgerLookup
	running bool
	// keyByKeyUntil: after the server refused a multi-key direct get,
	// reads go key by key until then, and multi_last is tried again.
	keyByKeyUntil time.Time

	// The runner's replies: one subscription for all its reads, made on
	// the first, and a fresh reply subject under it per read. Only the
	// runner touches these, one read at a time.
	replies     chan *nats.Msg
	inbox       string
	replySerial uint64
}

// maxLedgerBatch caps the keys of one batched read (the server answers at
// most 1,024 subjects at once).
const maxLedgerBatch = 256

// keyByKeyFor is how long the ledger reads key by key after the server
// refused a multi-key direct get (a stream restarting can refuse it too).
const keyByKeyFor = time.Minute

// ledgerReadTimeout bounds one batched read.
const ledgerReadTimeout = 10 * time.Second

// ledgerLookup is one caller's keys and, once done is closed, their answer.
type ledgerLookup struct {
	keys    []string
	started time.Time
	applied []bool
	err     error
	done    chan struct{}
	l       *ledger // set when there is no connection to batch on
}

// inflightKeys knows, for each event key of a job in flight (admitted and not
// yet settled), whether this process recorded the key while the job was in
// flight. A job's ledger read starts as it arrives; a duplicate of an event
// waiting in the same lane behind the first copy would otherwise trust a read
// made before the first copy was applied, however long it waited and however
// many other events were recorded meanwhile. It holds one entry per key in
// flight, so it is bounded by the window of unacknowledged events.
type inflightKeys struct {
	mu sync.Mutex
	m  map[string]*keyState
}

type keyState struct {
	jobs     int  // jobs with this key in flight
	recorded bool // recorded by this process while one was
}

func newInflightKeys() *inflightKeys { return &inflightKeys{m: make(map[string]*keyState)} }

// admit counts a job with key k in flight; release must follow, once.
func (t *inflightKeys) admit(k string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.m[k]
	if st == nil {
		st = &keyState{}
		t.m[k] = st
	}
	st.jobs++
}

// release ends what admit began.
func (t *inflightKeys) release(k string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.m[k]; st != nil {
		if st.jobs--; st.jobs <= 0 {
			delete(t.m, k)
		}
	}
}

// record notes that k was applied and recorded.
func (t *inflightKeys) record(k string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.m[k]; st != nil {
		st.recorded = true
	}
}

// recorded reports whether k was recorded while a job of it was in flight.
func (t *inflightKeys) recorded(k string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.m[k]
	return st != nil && st.recorded
}

// recentKeys remembers the keys this process recorded lately, for a job that
// arrives after the last job of its key settled: its read goes out after the
// write, on the same connection, but the server may answer it before the
// write is stored (or a replica of the bucket may lag), so for a while the
// key itself is the better answer. It keeps the last n keys.
type recentKeys struct {
	mu   sync.Mutex
	set  map[string]struct{}
	ring []string
	next int
}

func newRecentKeys(n int) *recentKeys {
	n = max(n, 1)
	return &recentKeys{set: make(map[string]struct{}, n), ring: make([]string, 0, n)}
}

func (r *recentKeys) add(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.set[k]; ok {
		return
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, k)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = k
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[k] = struct{}{}
}

func (r *recentKeys) has(k string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.set[k]
	return ok
}

// newLedger returns the ledger kept in bucket, read through js's connection.
func newLedger(js jetstream.JetStream, kv jetstream.KeyValue, bucket string) *ledger {
	l := &ledger{kv: kv, nc: js.Conn(), prefix: "$KV." + bucket + "."}
	api := "$JS.API."
	switch o := js.Options(); {
	case o.Domain != "":
		api = "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		api = strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	l.getSubject = api + "DIRECT.GET.KV_" + bucket
	return l
}

// LedgerEntry is the value stored per applied event (as JSON), for people
// inspecting the bucket and for FindEvent.
type LedgerEntry struct {
	ID        string    `json:"id"`
	Source    string    `json:"source"`
	Type      string    `json:"type"`
	Stream    string    `json:"stream"`
	Sequence  uint64    `json:"seq"`
	AppliedAt time.Time `json:"applied_at"`
}

// applied reports whether key was recorded. A read failure is an error, which
// the ack decision treats as retryable.
func (l *ledger) applied(ctx context.Context, key string) (bool, error) {
	a, err := l.lookup(ctx, []string{key})
	if err != nil {
		return false, err
	}
	return a[0], nil
}

// lookup reports for each key whether it was recorded, reading them with
// the keys other callers are waiting for.
func (l *ledger) lookup(ctx context.Context, keys []string) ([]bool, error) {
	if l.nc == nil {
		found, err := l.getEach(ctx, keys)
		if err != nil {
			return nil, err
		}
		return answer(keys, found), nil
	}
	return l.start(keys).wait(ctx)
}

// start queues a read of keys and returns at once; wait gives the answer.
// The consumer starts the read of each event as it arrives, so the events of
// one pull go out in a few batches, and waits for it when the event's turn
// comes. Without a connection (nc nil) the read happens in wait.
func (l *ledger) start(keys []string) *ledgerLookup {
	r := &ledgerLookup{keys: keys, done: make(chan struct{}), started: time.Now()}
	if l.nc == nil {
		r.l = l
		return r
	}
	l.mu.Lock()
	l.queue = append(l.queue, r)
	if !l.running {
		l.running = true
		go l.run()
	}
	l.mu.Unlock()
	return r
}

// wait returns the answer of a read queued by start.
func (r *ledgerLookup) wait(ctx context.Context) ([]bool, error) {
	if r.l != nil { // no connection: read key by key now
		found, err := r.l.getEach(ctx, r.keys)
		if err != nil {
			return nil, err
		}
		return answer(r.keys, found), nil
	}
	select {
	case <-r.done:
		return r.applied, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("read ledger: %w", ctx.Err())
	}
}

// run serves the queue a batch at a time until it is empty.
func (l *ledger) run() {
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.running = false
			l.mu.Unlock()
			return
		}
		n, take := 0, 0
		for take < len(l.queue) && (take == 0 || n+len(l.queue[take].keys) <= maxLedgerBatch) {
			n += len(l.queue[take].keys)
			take++
		}
		batch := make([]*ledgerLookup, take)
		copy(batch, l.queue)
		l.queue = append(l.queue[:0], l.queue[take:]...)
		direct := time.Now().After(l.keyByKeyUntil)
		l.mu.Unlock()
		l.serve(batch, direct)
	}
}

// serve reads the keys of batch and answers each lookup.
func (l *ledger) serve(batch []*ledgerLookup, direct bool) {
	ctx, cancel := context.WithTimeout(context.Background(), ledgerReadTimeout)
	defer cancel()
	var keys []string
	seen := make(map[string]bool)
	for _, r := range batch {
		for _, k := range r.keys {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	var found map[string]bool
	var err error
	if direct {
		found = make(map[string]bool, len(keys))
		// One lookup may bring more keys than one request takes.
		for rest := keys; len(rest) > 0 && err == nil; {
			chunk := rest[:min(len(rest), maxLedgerBatch)]
			rest = rest[len(chunk):]
			var part map[string]bool
			if part, err = l.multiLast(ctx, chunk); err == nil {
				maps.Copy(found, part)
			}
		}
		if errors.Is(err, errNoDirectGet) {
			l.mu.Lock()
			l.keyByKeyUntil = time.Now().Add(keyByKeyFor)
			l.mu.Unlock()
			if l.log != nil {
				l.log.Info("reading the ledger key by key for a while", "for", keyByKeyFor, "reason", err)
			}
		}
	}
	if !direct || errors.Is(err, errNoDirectGet) {
		found, err = l.getEach(ctx, keys)
	}
	for _, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.applied = answer(r.keys, found)
		}
		close(r.done)
	}
}

// answer is found's verdict for each of keys.
func answer(keys []string, found map[string]bool) []bool {
	out := make([]bool, len(keys))
	for i, k := range keys {
		out[i] = found[k]
	}
	return out
}

// errNoDirectGet: the bucket's stream does not answer direct gets of many
// keys (not allowed on the stream, or a server older than 2.11).
var errNoDirectGet = errors.New("ledger bucket does not answer multi-key direct gets")

// multiLast reads the last entry of each key with one direct get and
// returns the keys found (true) or deleted (false). Keys never recorded are
// absent. A reply cut short is completed key by key.
func (l *ledger) multiLast(ctx context.Context, keys []string) (map[string]bool, error) {
	if l.replies == nil {
		replies := make(chan *nats.Msg, maxLedgerBatch+2)
		inbox := l.nc.NewInbox()
		if _, err := l.nc.ChanSubscribe(inbox+".*", replies); err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		l.replies, l.inbox = replies, inbox
	}
	l.replySerial++
	reply := l.inbox + "." + strconv.FormatUint(l.replySerial, 10)
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subjects[i] = l.prefix + k
	}
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
	}{subjects})
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	if err := l.nc.PublishRequest(l.getSubject, reply, req); err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	found := make(map[string]bool, len(keys))
	for {
		var m *nats.Msg
		select {
		case m = <-l.replies:
		case <-ctx.Done():
			return nil, fmt.Errorf("read ledger: %w", ctx.Err())
		}
		if m.Subject != reply {
			continue // a late reply to an earlier read that gave up
		}
		switch status := m.Header.Get("Status"); status {
		case "":
			key, ok := strings.CutPrefix(m.Header.Get(jetstream.SubjectHeader), l.prefix)
			if !ok {
				return nil, fmt.Errorf("read ledger: reply for subject %q", m.Header.Get(jetstream.SubjectHeader))
			}
			op := m.Header.Get("KV-Operation")
			found[key] = op != "DEL" && op != "PURGE"
			continue
		case "204": // end of batch
			if p, _ := strconv.Atoi(m.Header.Get("Nats-Num-Pending")); p > 0 {
				return l.completeEach(ctx, keys, found)
			}
			return found, nil
		case "404":
			if strings.EqualFold(m.Header.Get("Description"), "No Results") {
				return found, nil
			}
		case "503":
			return nil, errNoDirectGet
		case "400", "408":
			// A server before 2.11 does not know multi_last and calls
			// the request empty.
			return nil, fmt.Errorf("%w: status %s %s", errNoDirectGet, status, m.Header.Get("Description"))
		}
		return nil, fmt.Errorf("read ledger: direct get: status %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
	}
}

// completeEach reads one by one the keys a cut-short reply did not answer.
func (l *ledger) completeEach(ctx context.Context, keys []string, found map[string]bool) (map[string]bool, error) {
	var rest []string
	for _, k := range keys {
		if _, ok := found[k]; !ok {
			rest = append(rest, k)
		}
	}
	more, err := l.getEach(ctx, rest)
	if err != nil {
		return nil, err
	}
	for k, v := range more {
		found[k] = v
	}
	return found, nil
}

// getEach reads keys one by one.
func (l *ledger) getEach(ctx context.Context, keys []string) (map[string]bool, error) {
	found := make(map[string]bool, len(keys))
	for _, k := range keys {
		_, err := l.kv.Get(ctx, k)
		switch {
		case err == nil:
			found[k] = true
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case errors.Is(err, jetstream.ErrKeyDeleted):
			found[k] = false
		default:
			return nil, fmt.Errorf("read ledger: %w", err)
		}
	}
	return found, nil
}

// record stores key as applied.
func (l *ledger) record(ctx context.Context, key string, e LedgerEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode ledger entry: %w", err)
	}
	if _, err := l.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("write ledger: %w", err)
	}
	return nil
}
