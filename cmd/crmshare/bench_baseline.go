package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// baselineConfig is what the baseline loop needs.
type baselineConfig struct {
	js          jetstream.JetStream
	stream      string
	apiURL      string // the emulator
	version     string // zoho.api_version
	creds       benchCreds
	concurrency int // HTTP calls at once: the client's zoho.max_concurrency
	events      int // how many messages to take from the stream
	// ledger, when its Bucket is set, also stores one entry per event in
	// this scratch key-value bucket (made like the service's ledger, deleted
	// after), without waiting for each confirmation, before the ack: the
	// least work that remembers applied events.
	ledger jetstream.KeyValueConfig
}

// baselineLedgerBucket is the scratch bucket of the baseline loop with a ledger.
const baselineLedgerBucket = "CRMSHARE_BENCH_LEDGER"

// runBaseline is the least work that carries out a backlog of grant events:
// fetch from a pull consumer, one POST per event with a valid token, ack. No
// ledger (unless cfg.ledger is set), no rules, no ordering, no retries, no
// telemetry. It returns how long it took to take and settle cfg.events
// messages (and, with a ledger, to have every entry confirmed).
func runBaseline(ctx context.Context, cfg baselineConfig) (time.Duration, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * cfg.concurrency}}
	defer hc.CloseIdleConnections()
	token, err := baselineToken(ctx, hc, cfg)
	if err != nil {
		return 0, err
	}
	var led *baselineLedger
	if cfg.ledger.Bucket != "" {
		if led, err = newBaselineLedger(ctx, cfg); err != nil {
			return 0, err
		}
		defer led.close(ctx)
	}
	durable := "crmshare_bench_baseline"
	if led != nil {
		durable += "_ledger"
	}
	cons, err := cfg.js.CreateOrUpdateConsumer(ctx, cfg.stream, jetstream.ConsumerConfig{
		Durable:       durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 4 * cfg.concurrency,
	})
	if err != nil {
		return 0, fmt.Errorf("baseline consumer: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = cfg.js.DeleteConsumer(dctx, cfg.stream, durable)
	}()

	start := time.Now()
	msgs := make(chan jetstream.Msg, cfg.concurrency)
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-runCtx.Done():
		}
	}, jetstream.PullMaxMessages(2*cfg.concurrency))
	if err != nil {
		return 0, fmt.Errorf("baseline consume: %w", err)
	}
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Go(func() {
			for {
				select {
				case <-runCtx.Done():
					return
				case m := <-msgs:
					if err := baselineOne(runCtx, hc, cfg, token, led, m); err != nil {
						fail(err)
						cancel()
						return
					}
					if done.Add(1) == int64(cfg.events) {
						cancel()
					}
				}
			}
		})
	}
	wg.Wait()
	if led != nil && firstErr == nil {
		if err := led.confirmed(ctx, cfg.events); err != nil {
			fail(err)
		}
	}
	elapsed := time.Since(start)
	cc.Stop()
	if firstErr != nil {
		return 0, firstErr
	}
	if n := done.Load(); n < int64(cfg.events) {
		return 0, fmt.Errorf("baseline: %d of %d events before %w", n, cfg.events, ctx.Err())
	}
	return elapsed, nil
}

// baselineOne POSTs the grant an event asks for, stores its ledger entry if
// there is a ledger, and acks it.
func baselineOne(ctx context.Context, hc *http.Client, cfg baselineConfig, token string, led *baselineLedger, m jetstream.Msg) error {
	var data struct {
		DealID string `json:"deal_id"`
		UserID string `json:"user_id"`
	}
	// Binary mode: the message data is the event's data.
	if err := json.Unmarshal(m.Data(), &data); err != nil {
		return fmt.Errorf("baseline: event data: %w", err)
	}
	var body []byte
	if cfg.version == "v8" {
		// The body the client sends: v8 mails the owner unless
		// notify_on_completion is false, so the flags are part of the call.
		body = fmt.Appendf(nil, `{"share":[{"shared_with":{"type":"users","id":%q},"permission":"read_only","share_related_records":false,"type":"private"}],"notify_on_completion":false,"notify_shared_members":false}`, data.UserID)
	} else {
		body = fmt.Appendf(nil, `{"share":[{"user":{"id":%q},"permission":"read_only","share_related_records":false}]}`, data.UserID)
	}
	module := "Deals"
	if m.Headers().Get("ce-type") == benchTypeAcct {
		module = "Accounts"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		cfg.apiURL+"/crm/"+cfg.version+"/"+module+"/"+data.DealID+"/actions/share", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	req.Header.Set("Authorization", "Zoho-oauthtoken "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("baseline: share: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusTooManyRequests {
		return fmt.Errorf("baseline: share: status %d", resp.StatusCode)
	}
	if led != nil {
		if err := led.record(m); err != nil {
			return err
		}
	}
	return m.Ack()
}

// baselineLedger is the baseline loop's ledger: a key-value bucket made like
// the service's, written the way the service writes its own (one entry per
// applied event, keyed by a hash of the CloudEvent's source and id, published
// without waiting for each confirmation). It is never read: the loop stands
// for the least a ledger costs.
type baselineLedger struct {
	js     jetstream.JetStream // the loop's own, for its asynchronous publishes
	bucket string
	failed atomic.Int64
	stream string
}

func newBaselineLedger(ctx context.Context, cfg baselineConfig) (*baselineLedger, error) {
	l := &baselineLedger{bucket: cfg.ledger.Bucket, stream: cfg.stream}
	var err error
	l.js, err = jetstream.New(cfg.js.Conn(),
		jetstream.WithPublishAsyncMaxPending(max(256, 8*cfg.concurrency)),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { l.failed.Add(1) }))
	if err != nil {
		return nil, fmt.Errorf("baseline ledger: %w", err)
	}
	_ = cfg.js.DeleteKeyValue(ctx, l.bucket) // a bucket left by an interrupted run
	if _, err := cfg.js.CreateKeyValue(ctx, cfg.ledger); err != nil {
		return nil, fmt.Errorf("baseline ledger: %w", err)
	}
	return l, nil
}

// record stores m's entry.
func (l *baselineLedger) record(m jetstream.Msg) error {
	h := m.Headers()
	sum := sha256.New()
	sum.Write([]byte(h.Get("ce-source")))
	sum.Write([]byte{0})
	sum.Write([]byte(h.Get("ce-id")))
	key := hex.EncodeToString(sum.Sum(nil))
	md, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("baseline ledger: %w", err)
	}
	entry := fmt.Appendf(nil, `{"id":%q,"source":%q,"type":%q,"stream":%q,"seq":%d,"applied_at":%q}`,
		h.Get("ce-id"), h.Get("ce-source"), h.Get("ce-type"), l.stream, md.Sequence.Stream, time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := l.js.PublishMsgAsync(&nats.Msg{Subject: "$KV." + l.bucket + "." + key, Data: entry}); err != nil {
		return fmt.Errorf("baseline ledger: %w", err)
	}
	return nil
}

// confirmed waits for the server to confirm every entry and checks that it
// holds one per event.
func (l *baselineLedger) confirmed(ctx context.Context, events int) error {
	select {
	case <-l.js.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("baseline ledger: %d entries unconfirmed: %w", l.js.PublishAsyncPending(), ctx.Err())
	}
	if n := l.failed.Load(); n > 0 {
		return fmt.Errorf("baseline ledger: %d entries refused", n)
	}
	kv, err := l.js.KeyValue(ctx, l.bucket)
	if err != nil {
		return fmt.Errorf("baseline ledger: %w", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("baseline ledger: %w", err)
	}
	if st.Values() != uint64(events) {
		return fmt.Errorf("baseline ledger: %d entries for %d events", st.Values(), events)
	}
	return nil
}

func (l *baselineLedger) close(ctx context.Context) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = l.js.DeleteKeyValue(dctx, l.bucket)
}

// baselineToken gets an access token from the emulator's token endpoint.
func baselineToken(ctx context.Context, hc *http.Client, cfg baselineConfig) (string, error) {
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {cfg.creds.clientID},
		"client_secret": {cfg.creds.secret},
		"refresh_token": {cfg.creds.refresh},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.apiURL+"/oauth/v2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("baseline token: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("baseline token: %w", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&tok); err != nil {
		return "", fmt.Errorf("baseline token: status %d: %w", resp.StatusCode, err)
	}
	if tok.AccessToken == "" {
		return "", errors.New("baseline token: no access_token in the reply")
	}
	return tok.AccessToken, nil
}
