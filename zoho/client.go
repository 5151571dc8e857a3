package zoho

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const (
	defaultAPIVersion     = "v8"
	defaultDataCenter     = "us"
	defaultMaxConcurrency = 10
	defaultTimeout        = 15 * time.Second
	defaultUsersCacheTTL  = 10 * time.Minute

	// maxErrorBodySize caps how much of an error reply is read: Zoho's error
	// objects are a few hundred bytes, and a proxy's HTML page is not worth more.
	maxErrorBodySize = 64 << 10
	// maxBodySize caps a successful reply (a page of 200 users is ~200 KiB).
	maxBodySize = 16 << 20

	// authScheme is Zoho's Authorization scheme; the token endpoint says "Bearer",
	// but the CRM API only accepts this one.
	authScheme = "Zoho-oauthtoken "

	instrumentationName = "github.com/crmshare/crmshare/zoho"
)

// Config configures a Client. Every field's zero value is a documented default,
// except the credentials (ClientID, ClientSecret, RefreshToken), which are required.
type Config struct {
	// APIVersion is the dialect of the share API: "v2", "v2.1" or "v8". Default "v8".
	APIVersion string
	// DataCenter chooses Zoho's accounts server and API domain: us, eu, in, au, jp,
	// ca, sa or cn. Default "us".
	DataCenter string
	// APIURL overrides the API domain, e.g. the emulator's URL. When empty, the
	// api_domain of the token reply is used if it belongs to the data centre, else
	// the data centre's domain.
	APIURL string
	// AccountsURL overrides the accounts server; the token endpoint is
	// {AccountsURL}/oauth/v2/token. When set, api_domain replies are trusted as given.
	AccountsURL string
	// ClientID is the OAuth client ID (required).
	ClientID string
	// ClientSecret is the OAuth client secret (required).
	ClientSecret Secret
	// RefreshToken is the long-lived refresh token (required).
	RefreshToken Secret
	// MaxConcurrency is the client-wide limit on Zoho calls in flight. Default 10.
	MaxConcurrency int
	// Timeout bounds each HTTP request, including reading its reply. Default 15s.
	Timeout time.Duration
	// Notify sets v8's notify_on_completion and notify_shared_members. Default
	// false: automation should not mail the owner for every event. Ignored by v2/v2.1.
	Notify bool
	// UsersCacheTTL is the minimum interval between user-list refreshes; a lookup
	// that misses refreshes the list only when the last refresh is at least this
	// old. Default 10m.
	UsersCacheTTL time.Duration
	// HTTPClient sends every request, so telemetry can wrap its transport. Its own
	// Timeout is left alone. Default: a fresh http.Client.
	HTTPClient *http.Client
	// Logger receives debug and warning records. Nil discards them.
	Logger *slog.Logger
	// MeterProvider provides the client's metrics. Nil means no metrics.
	MeterProvider metric.MeterProvider
}

func (c *Config) setDefaults() {
	if c.APIVersion == "" {
		c.APIVersion = defaultAPIVersion
	}
	if c.DataCenter == "" {
		c.DataCenter = defaultDataCenter
	}
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = defaultMaxConcurrency
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.UsersCacheTTL == 0 {
		c.UsersCacheTTL = defaultUsersCacheTTL
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with the configuration at once. Zero values
// that have defaults are valid.
func (c Config) Validate() error {
	var errs []error
	switch c.APIVersion {
	case "", "v2", "v2.1", "v8":
	default:
		errs = append(errs, fmt.Errorf("api version %q: want v2, v2.1 or v8", c.APIVersion))
	}
	if _, ok := dataCenters[c.DataCenter]; !ok && c.DataCenter != "" {
		errs = append(errs, fmt.Errorf("data center %q: want us, eu, in, au, jp, ca, sa or cn", c.DataCenter))
	}
	for _, u := range []struct{ name, value string }{{"api url", c.APIURL}, {"accounts url", c.AccountsURL}} {
		if u.value == "" {
			continue
		}
		if _, err := parseBaseURL(u.value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.name, err))
		}
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("client id is required"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("client secret is required"))
	}
	if c.RefreshToken == "" {
		errs = append(errs, errors.New("refresh token is required"))
	}
	if c.MaxConcurrency < 0 {
		errs = append(errs, fmt.Errorf("max concurrency %d: must not be negative", c.MaxConcurrency))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s: must not be negative", c.Timeout))
	}
	if c.UsersCacheTTL < 0 {
		errs = append(errs, fmt.Errorf("users cache ttl %s: must not be negative", c.UsersCacheTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("zoho config: %w", err)
	}
	return nil
}

// parseBaseURL accepts an absolute http or https URL without query or fragment.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q: want an absolute http or https URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q: want no query, fragment or user info", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// Client calls Zoho CRM's share and users APIs for one OAuth client and refresh
// token. It is safe for concurrent use; share one per process, because Zoho limits
// how many access tokens a refresh token may mint (10 per 10 minutes).
type Client struct {
	version string
	notify  bool
	timeout time.Duration
	hc      *http.Client
	log     *slog.Logger
	tokens  *tokenSource
	lim     *limiter
	credits *creditWatch
	users   *userCache
	m       *metrics
	now     func() time.Time
}

// NewClient checks cfg, fills in its defaults and returns a client. It makes no
// request; call CheckCredentials to find out early whether the credentials work.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newMetrics(cfg.MeterProvider)
	if err != nil {
		return nil, fmt.Errorf("zoho metrics: %w", err)
	}
	c := &Client{
		version: cfg.APIVersion,
		notify:  cfg.Notify,
		timeout: cfg.Timeout,
		hc:      cfg.HTTPClient,
		log:     cfg.Logger,
		lim:     newLimiter(cfg.MaxConcurrency),
		credits: newCreditWatch(cfg.MaxConcurrency),
		m:       m,
		now:     time.Now,
	}
	c.users = &userCache{ttl: cfg.UsersCacheTTL}
	ts, err := newTokenSource(cfg, c)
	if err != nil {
		return nil, err
	}
	c.tokens = ts
	return c, nil
}

// APIVersion returns the dialect the client speaks: "v2", "v2.1" or "v8".
func (c *Client) APIVersion() string { return c.version }

// CheckCredentials makes sure a valid access token can be had, refreshing one if
// the client holds none. A rejected client or refresh token is a *CredentialsError.
func (c *Client) CheckCredentials(ctx context.Context) error {
	if _, err := c.tokens.get(ctx); err != nil {
		return fmt.Errorf("check credentials: %w", err)
	}
	return nil
}

// Probe tells whether calls can go through again after an error that asked
// to pause (one whose Suspend is true): it checks the credentials and, if
// the last reply said the day's API credits were used up, makes the cheapest
// CRM call there is (the current user, one credit) to see whether they are
// back. The error is the reason to keep waiting.
func (c *Client) Probe(ctx context.Context) error {
	if err := c.CheckCredentials(ctx); err != nil {
		return err
	}
	if !c.credits.exhausted() {
		return nil
	}
	resp, err := c.do(ctx, apiRequest{method: http.MethodGet, path: "users", query: url.Values{"type": {"CurrentUser"}}})
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if resp.status == http.StatusTooManyRequests {
		return fmt.Errorf("probe: %w", apiError(resp))
	}
	return nil
}

// apiRequest is one call to the CRM API, relative to {api_domain}/crm/{version}/.
type apiRequest struct {
	method string
	path   string // already escaped, e.g. "Deals/123/actions/share"
	query  url.Values
	body   []byte // JSON, or nil
}

// apiResponse is a reply whose body was read and decoded.
type apiResponse struct {
	status int
	header http.Header
	env    envelope
	// creditsGone: a 429 the client takes to mean the day's credits are used up.
	creditsGone bool
}

// do sends r and returns its decoded reply, whatever the status. A 401
// INVALID_TOKEN or AUTHENTICATION_FAILURE is handled here: the token is refreshed
// once and the request retried once. The error return is only for requests that
// got no usable reply (network, timeout, undecodable body, token failures).
func (c *Client) do(ctx context.Context, r apiRequest) (*apiResponse, error) {
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.send(ctx, r, tok)
		if err != nil {
			return nil, err
		}
		if resp.status == http.StatusUnauthorized && attempt == 0 && isTokenCode(resp.env.errorCode()) {
			c.tokens.invalidate(tok)
			continue
		}
		return resp, nil
	}
}

func isTokenCode(code string) bool {
	return code == "INVALID_TOKEN" || code == "AUTHENTICATION_FAILURE"
}

// send makes one HTTP round trip under the concurrency limit and the per-request timeout.
func (c *Client) send(ctx context.Context, r apiRequest, tok *token) (*apiResponse, error) {
	if err := c.lim.acquire(ctx, c.now); err != nil {
		return nil, err
	}
	defer c.lim.release()

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	target := tok.crmPrefix + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return nil, &Error{Message: "build request: " + err.Error(), Err: err}
	}
	req.Header.Set("Authorization", tok.authorization)
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.m.request(ctx, r.method, 0, "", time.Since(start))
		return nil, transportError(r, err)
	}
	out, err := c.readReply(resp)
	c.m.request(ctx, r.method, resp.StatusCode, out.env.errorCode(), time.Since(start))
	if err != nil {
		return nil, transportError(r, err)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		c.lim.throttled(c.now(), retryAfter(resp.Header, c.now()))
	} else {
		c.lim.ok()
	}
	out.creditsGone = c.credits.observe(c.now(), resp.StatusCode, resp.Header)
	return out, nil
}

// transportError is a request that got no usable answer. It is retryable
// (Status 0) and wraps the cause, so errors.Is(err, context.Canceled) still works.
func transportError(r apiRequest, err error) *Error {
	var ue *url.Error
	msg := err.Error()
	if errors.As(err, &ue) {
		// The URL carries no secret, but the method and path say it more briefly.
		msg = ue.Err.Error()
	}
	return &Error{Message: fmt.Sprintf("%s %s: %s", r.method, r.path, msg), Err: err}
}

// readReply reads and decodes the body. The zoho.code attribute goes on the
// request's span (otelhttp's client span when the transport is wrapped). That
// span ends as soon as the body reports EOF, so when the length is known the
// last byte is held back until the code has been recorded.
func (c *Client) readReply(resp *http.Response) (*apiResponse, error) {
	defer resp.Body.Close()
	out := &apiResponse{status: resp.StatusCode, header: resp.Header}
	limit := int64(maxBodySize)
	if resp.StatusCode >= 300 {
		limit = maxErrorBodySize
	}
	span := trace.SpanFromContext(resp.Request.Context())
	var body []byte
	if n := resp.ContentLength; n > 1 && n <= limit && span.IsRecording() {
		body = make([]byte, n)
		if _, err := io.ReadFull(resp.Body, body[:n-1]); err != nil {
			return out, fmt.Errorf("read reply: %w", err)
		}
		if code := peekCode(body[:n-1]); code != "" {
			span.SetAttributes(attribute.String("zoho.code", code))
		}
		if _, err := io.ReadFull(resp.Body, body[n-1:]); err != nil {
			return out, fmt.Errorf("read reply: %w", err)
		}
	} else if n := resp.ContentLength; n > 0 && n <= limit {
		// The usual case: one buffer of the announced size.
		body = make([]byte, n)
		if _, err := io.ReadFull(resp.Body, body); err != nil {
			return out, fmt.Errorf("read reply: %w", err)
		}
	} else {
		var err error
		body, err = io.ReadAll(io.LimitReader(resp.Body, limit))
		if err != nil {
			return out, fmt.Errorf("read reply: %w", err)
		}
	}
	// Drain a little so the connection can be reused; a longer body is abandoned.
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)

	if err := out.env.decode(resp.StatusCode, resp.Header.Get("Content-Type"), body); err != nil {
		return out, err
	}
	if code := out.env.errorCode(); code != "" && span.IsRecording() {
		span.SetAttributes(attribute.String("zoho.code", code))
	}
	return out, nil
}

// peekCode finds the error code in a body missing its last byte, which for a
// JSON object is a closing brace or trailing white space.
func peekCode(prefix []byte) string {
	var e envelope
	if json.Unmarshal(prefix, &e) != nil {
		if json.Unmarshal(append(prefix[:len(prefix):len(prefix)], '}'), &e) != nil {
			return ""
		}
	}
	return e.errorCode()
}

// retryAfter parses Retry-After as seconds or an HTTP date; 0 when absent or invalid.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// apiError turns a reply that is not a per-entry answer into a *Error.
func apiError(resp *apiResponse) *Error {
	e := &Error{Status: resp.status}
	switch {
	case resp.env.Code != "":
		e.Code, e.Message, e.Details = resp.env.Code, resp.env.Message, resp.env.Details
	case len(resp.env.Share.entries) > 0:
		first := resp.env.Share.entries[0]
		for _, en := range resp.env.Share.entries {
			if !en.success() {
				first = en
				break
			}
		}
		e.Code, e.Message, e.Details = first.Code, first.Message, first.Details
	default:
		e.Message = strings.ToLower(http.StatusText(resp.status))
		if resp.env.nonJSON {
			e.Message += " (reply was not JSON)"
		}
	}
	if resp.status == http.StatusTooManyRequests && e.Code == "" {
		e.Code = "TOO_MANY_REQUESTS"
	}
	e.CreditsExhausted = resp.creditsGone
	e.RetryAfter = retryAfter(resp.header, time.Now())
	return e
}
