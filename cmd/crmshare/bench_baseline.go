package main

import (
	"bytes"
	"context"
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
}

// runBaseline is the least work that carries out a backlog of grant events:
// fetch from a pull consumer, one POST per event with a valid token, ack. No
// ledger, no rules, no ordering, no retries, no telemetry. It returns how long
// it took to take and settle cfg.events messages.
func runBaseline(ctx context.Context, cfg baselineConfig) (time.Duration, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * cfg.concurrency}}
	defer hc.CloseIdleConnections()
	token, err := baselineToken(ctx, hc, cfg)
	if err != nil {
		return 0, err
	}
	cons, err := cfg.js.CreateOrUpdateConsumer(ctx, cfg.stream, jetstream.ConsumerConfig{
		Durable:       "crmshare_bench_baseline",
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
		_ = cfg.js.DeleteConsumer(dctx, cfg.stream, "crmshare_bench_baseline")
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
					if err := baselineOne(runCtx, hc, cfg, token, m); err != nil {
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

// baselineOne POSTs the grant an event asks for and acks it.
func baselineOne(ctx context.Context, hc *http.Client, cfg baselineConfig, token string, m jetstream.Msg) error {
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
	return m.Ack()
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
