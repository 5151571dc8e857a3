package zohoemu

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Zoho's token limits: at most 10 new access tokens per 10 minutes per refresh
// token, at most 15 active ones (the 16th evicts the oldest).
const (
	refreshThrottle       = 10
	refreshThrottleWindow = 10 * time.Minute
	maxActiveTokens       = 15
)

type refreshState struct {
	clientID string
	revoked  bool
	active   []*accessToken // oldest first
	mints    []time.Time    // mint times inside the throttle window
}

type accessToken struct {
	token    string
	refresh  string
	clientID string
	userID   string
	scopes   []string
	expires  time.Time
	dead     bool // evicted or revoked
	seq      int64
}

func (t *accessToken) live(now time.Time) bool { return !t.dead && now.Before(t.expires) }

func (e *Emulator) serveOAuth(w http.ResponseWriter, r *http.Request) {
	pattern := r.URL.Path
	delay, rp := e.beforeFault(r, pattern, false)
	if !sleep(r.Context(), delay) {
		return
	}
	if rp != nil {
		if rp.drop {
			e.record(r, pattern, nil)
			drop(w)
			return
		}
		e.record(r, pattern, rp)
		rp.write(w)
		return
	}
	switch {
	case r.Method != http.MethodPost:
		rp = jsonReply(http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request_method"}, "invalid_request_method")
	case pattern == "/oauth/v2/token/revoke":
		rp = e.revokeEndpoint(r)
	default:
		rp = e.tokenEndpoint(r)
	}
	e.record(r, pattern, rp)
	rp.write(w)
}

// tokenEndpoint implements POST /oauth/v2/token with grant_type=refresh_token.
// The parameters may come as a urlencoded or multipart body or in the query
// string; the client may also authenticate with HTTP Basic. Failures are HTTP
// 200 with an "error" key, as Zoho Accounts answers.
func (e *Emulator) tokenEndpoint(r *http.Request) *reply {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		_ = r.ParseMultipartForm(1 << 20)
	} else {
		_ = r.ParseForm()
	}
	get := func(k string) string { return strings.TrimSpace(r.Form.Get(k)) }
	clientID, secret := get("client_id"), get("client_secret")
	if clientID == "" {
		if u, p, ok := r.BasicAuth(); ok {
			clientID, secret = u, p
		}
	}
	fail := func(code string) *reply {
		return jsonReply(http.StatusOK, map[string]string{"error": code}, code)
	}
	if get("grant_type") != "refresh_token" {
		return fail("unsupported_grant_type")
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.clients[clientID]
	if !ok {
		return fail("invalid_client")
	}
	if c.ClientSecret != secret {
		return fail("invalid_client_secret")
	}
	rt := get("refresh_token")
	rs, ok := e.refresh[rt]
	if !ok || rs.revoked || rs.clientID != clientID {
		return fail("invalid_code")
	}
	now := e.cfg.Now()
	rs.mints = slices.DeleteFunc(rs.mints, func(t time.Time) bool { return now.Sub(t) >= refreshThrottleWindow })
	if len(rs.mints) >= refreshThrottle {
		return jsonReply(http.StatusOK, map[string]string{
			"error_description": "You have made too many requests continuously. Please try again after some time.",
			"error":             "Access Denied",
			"status":            "failure",
		}, "Access Denied")
	}
	rs.mints = append(rs.mints, now)
	e.seq++
	t := &accessToken{
		token:    "1000." + randomHex(16) + "." + randomHex(16),
		refresh:  rt,
		clientID: clientID,
		userID:   c.UserID,
		scopes:   slices.Clone(c.Scopes),
		expires:  now.Add(e.cfg.TokenTTL),
		seq:      e.seq,
	}
	rs.active = slices.DeleteFunc(rs.active, func(t *accessToken) bool { return !t.live(now) })
	for len(rs.active) >= maxActiveTokens {
		rs.active[0].dead = true
		delete(e.tokens, rs.active[0].token)
		rs.active = rs.active[1:]
	}
	rs.active = append(rs.active, t)
	e.tokens[t.token] = t
	e.minted++
	e.issued = append(e.issued, t.token)

	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	ttl := int64(e.cfg.TokenTTL / time.Second)
	body := map[string]any{
		"access_token": t.token,
		"api_domain":   scheme + "://" + r.Host,
		"token_type":   "Bearer",
		"expires_in":   ttl,
	}
	if e.cfg.LegacyTokenReply {
		body["expires_in"] = ttl * 1000
		body["expires_in_sec"] = ttl
	}
	return jsonReply(http.StatusOK, body, "")
}

// revokeEndpoint implements POST /oauth/v2/token/revoke?token=<refresh token>.
func (e *Emulator) revokeEndpoint(r *http.Request) *reply {
	_ = r.ParseForm()
	e.RevokeRefreshToken(r.Form.Get("token"))
	return jsonReply(http.StatusOK, map[string]string{"status": "success"}, "")
}

// RevokeRefreshToken revokes a refresh token and every access token minted from
// it, as POST /oauth/v2/token/revoke does. An unknown token is ignored.
func (e *Emulator) RevokeRefreshToken(token string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.revokeLocked(token)
}

func (e *Emulator) revokeLocked(token string) {
	rs, ok := e.refresh[token]
	if !ok {
		return
	}
	rs.revoked = true
	for _, t := range rs.active {
		t.dead = true
		delete(e.tokens, t.token)
	}
	rs.active = nil
}

// ExpireTokens makes every access token issued so far expire now, so the next
// CRM call with one gets 401 INVALID_TOKEN.
func (e *Emulator) ExpireTokens() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.tokens {
		t.dead = true
	}
	e.tokens = map[string]*accessToken{}
	for _, rs := range e.refresh {
		rs.active = nil
	}
}

// TokenRefreshes returns how many access tokens have been minted since New or Reset.
func (e *Emulator) TokenRefreshes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.minted
}

// IssuedTokens returns every access token the token endpoint has minted since
// New, oldest first, whether still valid or not; Reset keeps them. Tests use
// it to check that no token leaks into logs or traces.
func (e *Emulator) IssuedTokens() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.issued)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// authenticate checks the Authorization header of a CRM call and returns the
// caller's token, or the 401 to send.
func (e *Emulator) authenticate(r *http.Request) (*accessToken, *reply) {
	h := r.Header.Get("Authorization")
	const prefix = "zoho-oauthtoken "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return nil, errorReply(http.StatusUnauthorized, "AUTHENTICATION_FAILURE", "Authentication failed", nil)
	}
	tok := strings.TrimSpace(h[len(prefix):])
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.tokens[tok]
	if !ok || !t.live(e.cfg.Now()) {
		return nil, errorReply(http.StatusUnauthorized, "INVALID_TOKEN", "invalid oauth token", nil)
	}
	return t, nil
}

// hasScope reports whether the token carries one of the wanted scopes (Zoho
// compares scopes without regard to case).
func (t *accessToken) hasScope(want ...string) bool {
	for _, have := range t.scopes {
		for _, w := range want {
			if strings.EqualFold(have, w) {
				return true
			}
		}
	}
	return false
}
