package zoho

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

const (
	// maxTokenTTL caps a token's lifetime at the hour Zoho documents, so a reply
	// in the legacy shape (expires_in in milliseconds, no expires_in_sec) cannot
	// make the client trust a token for 41 days.
	maxTokenTTL = time.Hour
	// refreshEarly is how long before expiry a token is replaced, so work queued
	// behind the limiter does not start with a token about to die.
	refreshEarly = 5 * time.Minute
	// earlyRetry is the wait before retrying a failed early refresh while the
	// current token is still valid.
	earlyRetry = 30 * time.Second
	// throttleBlock is how long the client stops asking for a token after Zoho's
	// "Access Denied" throttle when it has no valid token to fall back on.
	throttleBlock = 30 * time.Second
)

// credentialsCodes are the token endpoint's refusals that only a person can fix.
var credentialsCodes = map[string]bool{
	"invalid_code":          true,
	"invalid_client":        true,
	"invalid_client_secret": true,
}

// token is one access token and the API base it goes with.
type token struct {
	access    string
	base      *url.URL
	expiry    time.Time
	refreshAt time.Time
	// Made once per token rather than on every call: the Authorization
	// header's value and the URL prefix of the CRM API, {base}/crm/{version}/.
	authorization, crmPrefix string
}

// tokenSource is the client's one token cache: refresh-token grant through
// x/oauth2, single-flight refresh, refresh ahead of expiry, and fallback to a
// still-valid token when a refresh fails.
type tokenSource struct {
	oauth       oauth2.Config
	refresh     string
	c           *Client // for the HTTP client, clock, timeout, logger and metrics
	apiOverride *url.URL
	dc          dataCenter
	trustDomain bool // AccountsURL is overridden: take api_domain as given

	mu           sync.Mutex
	cur          *token
	call         *refreshCall
	nextEarly    time.Time // no early refresh before this, after one failed
	blockedUntil time.Time // no refresh at all before this, after a throttle
	blockedErr   error
}

// refreshCall is a refresh in flight; waiters block on done.
type refreshCall struct {
	done chan struct{}
	tok  *token
	err  error
}

func newTokenSource(cfg Config, c *Client) (*tokenSource, error) {
	dc := dataCenters[cfg.DataCenter]
	accounts := dc.accounts
	if cfg.AccountsURL != "" {
		accounts = cfg.AccountsURL
	}
	au, err := parseBaseURL(accounts)
	if err != nil {
		return nil, fmt.Errorf("zoho accounts url: %w", err)
	}
	ts := &tokenSource{
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: string(cfg.ClientSecret),
			Endpoint: oauth2.Endpoint{
				TokenURL:  au.String() + "/oauth/v2/token",
				AuthStyle: oauth2.AuthStyleInParams,
			},
		},
		refresh:     string(cfg.RefreshToken),
		c:           c,
		dc:          dc,
		trustDomain: cfg.AccountsURL != "",
	}
	if cfg.APIURL != "" {
		if ts.apiOverride, err = parseBaseURL(cfg.APIURL); err != nil {
			return nil, fmt.Errorf("zoho api url: %w", err)
		}
	}
	return ts, nil
}

// get returns a token that is valid now, refreshing when there is none, when
// the current one is due for early replacement, or after invalidate.
func (s *tokenSource) get(ctx context.Context) (*token, error) {
	for {
		s.mu.Lock()
		now := s.c.now()
		cur := s.cur
		if cur != nil && now.Before(cur.refreshAt) {
			s.mu.Unlock()
			return cur, nil
		}
		usable := cur != nil && now.Before(cur.expiry)
		if call := s.call; call != nil {
			s.mu.Unlock()
			if usable {
				return cur, nil // someone is refreshing early; this one still works
			}
			select {
			case <-call.done:
			case <-ctx.Done():
				return nil, &Error{Message: "wait for token refresh: " + ctx.Err().Error(), Err: ctx.Err()}
			}
			if call.err == nil {
				return call.tok, nil
			}
			if isContextErr(call.err) && ctx.Err() == nil {
				continue // the leader gave up; this caller may still try
			}
			return nil, call.err
		}
		if usable && now.Before(s.nextEarly) {
			s.mu.Unlock()
			return cur, nil
		}
		if !usable && now.Before(s.blockedUntil) {
			err := s.blockedErr
			s.mu.Unlock()
			return nil, err
		}
		call := &refreshCall{done: make(chan struct{})}
		s.call = call
		s.mu.Unlock()

		tok, err := s.fetch(ctx)

		s.mu.Lock()
		s.call = nil
		now = s.c.now()
		switch {
		case err == nil:
			s.cur = tok
			s.nextEarly = time.Time{}
			s.blockedUntil = time.Time{}
		case usable:
			s.nextEarly = now.Add(earlyRetry)
		default:
			var ze *Error
			if errors.As(err, &ze) && ze.Throttled() {
				s.blockedUntil = now.Add(throttleBlock)
				s.blockedErr = err
			}
		}
		call.tok, call.err = tok, err
		close(call.done)
		s.mu.Unlock()

		if err != nil {
			if usable && ctx.Err() == nil {
				// Zoho limits refreshes; the old token is good until it expires.
				s.c.log.WarnContext(ctx, "zoho token refresh failed, keeping the current token",
					"error", err, "expires_in", cur.expiry.Sub(now).Round(time.Second))
				return cur, nil
			}
			return nil, err
		}
		return tok, nil
	}
}

// invalidate drops tok after the API refused it, unless a newer token has
// already replaced it: fifty requests refused with the same token cause one refresh.
func (s *tokenSource) invalidate(tok *token) {
	s.mu.Lock()
	if s.cur == tok {
		s.cur = nil
	}
	s.mu.Unlock()
}

// fetch asks the accounts server for a new access token.
func (s *tokenSource) fetch(ctx context.Context) (*token, error) {
	ctx, cancel := context.WithTimeout(ctx, s.c.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.c.hc)
	start := s.c.now()
	t, err := s.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: s.refresh}).Token()
	if err != nil {
		err = s.classify(ctx, err)
		result := refreshError
		var ce *CredentialsError
		var ze *Error
		switch {
		case errors.As(err, &ce):
			result = refreshRejected
		case errors.As(err, &ze) && ze.Throttled():
			result = refreshThrottled
		}
		s.c.m.refresh(ctx, result)
		return nil, err
	}
	s.c.m.refresh(ctx, refreshOK)
	ttl := tokenTTL(t)
	tok := &token{
		access:    t.AccessToken,
		base:      s.apiBase(ctx, t),
		expiry:    start.Add(ttl),
		refreshAt: start.Add(ttl - min(refreshEarly, ttl/5)),
	}
	tok.authorization = authScheme + tok.access
	tok.crmPrefix = tok.base.String() + "/crm/" + s.c.version + "/"
	s.c.log.DebugContext(ctx, "zoho token refreshed", "ttl", ttl, "api_domain", tok.base.String())
	return tok, nil
}

// classify turns an x/oauth2 failure into *CredentialsError or *Error. Zoho
// answers token errors with HTTP 200 and an "error" key; x/oauth2 reports those
// as *oauth2.RetrieveError. The original error is not wrapped: it holds the raw
// reply, and nothing from the request may leak.
func (s *tokenSource) classify(ctx context.Context, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		if cerr := ctx.Err(); cerr != nil {
			return &Error{Message: "token refresh: " + cerr.Error(), Err: cerr}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			return &Error{Message: "token refresh: " + ue.Err.Error(), Err: ue.Err}
		}
		// e.g. "server response missing access_token", or a body that is not JSON.
		return &Error{Message: "token refresh: " + err.Error()}
	}
	code := re.ErrorCode
	status := 0
	if re.Response != nil && (re.Response.StatusCode < 200 || re.Response.StatusCode > 299) {
		status = re.Response.StatusCode
	}
	desc := re.ErrorDescription
	switch {
	case credentialsCodes[code]:
		return &CredentialsError{Code: code}
	case strings.EqualFold(code, "Access Denied") || strings.Contains(strings.ToLower(desc), "too many requests") ||
		status == http.StatusTooManyRequests:
		msg := "token refresh throttled"
		if desc != "" {
			msg += ": " + desc
		}
		return &Error{Status: http.StatusTooManyRequests, Code: code, Message: msg, RetryAfter: throttleBlock}
	}
	msg := "token refresh refused"
	if code != "" {
		msg += ": " + code
	}
	if desc != "" {
		msg += ": " + desc
	}
	// Status 0 or the endpoint's own failure status: retryable, because an
	// unrecognised token failure must not dead-letter the stream.
	if status < 500 {
		status = 0
	}
	return &Error{Status: status, Code: code, Message: msg}
}

// apiBase picks the API domain for requests made with t: the configured
// override, else the reply's api_domain when it belongs to the data centre (or
// the accounts server is overridden), else the data centre's domain.
func (s *tokenSource) apiBase(ctx context.Context, t *oauth2.Token) *url.URL {
	if s.apiOverride != nil {
		return s.apiOverride
	}
	def, _ := url.Parse(s.dc.api)
	raw, _ := t.Extra("api_domain").(string)
	if raw == "" {
		return def
	}
	u, err := parseBaseURL(raw)
	if err == nil && (s.trustDomain || s.dc.acceptsAPIDomain(u)) {
		return u
	}
	s.c.log.WarnContext(ctx, "zoho api_domain outside the data centre ignored",
		slog.String("api_domain", raw), slog.String("using", def.String()))
	return def
}

// tokenTTL reads the token's lifetime. Zoho's legacy reply puts milliseconds in
// expires_in and seconds in expires_in_sec, so expires_in_sec wins when present.
// The result is capped at an hour; a reply with neither gets the hour.
func tokenTTL(t *oauth2.Token) time.Duration {
	if sec, ok := number(t.Extra("expires_in_sec")); ok && sec > 0 {
		return min(time.Duration(sec*float64(time.Second)), maxTokenTTL)
	}
	if sec, ok := number(t.Extra("expires_in")); ok && sec > 0 {
		return min(time.Duration(sec*float64(time.Second)), maxTokenTTL)
	}
	return maxTokenTTL
}

// number reads a JSON number that may have arrived as a string.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil
	}
	return 0, false
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
