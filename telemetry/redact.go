package telemetry

import (
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Redacted replaces every value the log handler hides. It matches what the
// project's secret types return from LogValue.
const Redacted = "REDACTED"

// secretKeyParts are the fragments that make an attribute key secret. A key
// is normalised (lower case; '-', '.' and ' ' become '_') and is secret if it
// contains any fragment, so "refresh_token", "Authorization", "X-Api-Key",
// "zoho.client_secret" and "token_url" are all hidden. Attributes inside a
// group whose name matches are hidden too. Over-redacting a harmless key is
// the accepted price of never leaking a real one.
var secretKeyParts = []string{
	"token",  // access_token, refresh_token, bearer_token, id_token
	"secret", // client_secret, hmac_secret
	"password",
	"passwd",
	"passphrase",
	"authorization",
	"api_key",
	"apikey",
	"credential",
	"cookie",
	"private_key",
	"bearer",
	"jwt",
	"nkey",
}

// secretInText finds credentials inside free text such as an error message:
// "Zoho-oauthtoken x" (any case), "Bearer x" and "Basic x" as an
// Authorization header spells them, and parameters like "refresh_token=x",
// "client_secret=x" or "password=x" that a *url.Error quotes in full.
var secretInText = regexp.MustCompile(`((?i:zoho-oauthtoken)\s+|(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{6,}|((?i:[a-z_]*token|[a-z_]*secret|password|passwd|api_?key)=)[^&\s"',;]+`)

func secretKey(key string) bool {
	k := strings.Map(func(r rune) rune {
		switch r {
		case '-', '.', ' ':
			return '_'
		}
		return r
	}, strings.ToLower(key))
	for _, p := range secretKeyParts {
		if strings.Contains(k, p) {
			return true
		}
	}
	return false
}

// scrub masks credentials found in s. The cheap checks keep ordinary strings
// away from the regular expression.
func scrub(s string) string {
	if !strings.Contains(s, "=") && !strings.ContainsAny(s, " \t") {
		return s
	}
	return secretInText.ReplaceAllString(s, "${1}${2}"+Redacted)
}

// redactAttr is the handlers' ReplaceAttr. slog resolves LogValuer before
// calling it, so a secret type has already turned itself into "REDACTED";
// this adds redaction by key (secretKeyParts), by enclosing group, and by
// value for the types that print credentials on their own: strings and errors
// with credentials in them, http.Header and url.URL.
func redactAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 {
		switch a.Key {
		case slog.TimeKey, slog.LevelKey, slog.MessageKey, slog.SourceKey:
			return a
		}
	}
	if secretKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	for _, g := range groups {
		if secretKey(g) {
			return slog.String(a.Key, Redacted)
		}
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); scrub(s) != s {
			return slog.String(a.Key, scrub(s))
		}
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			return slog.String(a.Key, scrub(v.Error()))
		case http.Header:
			return slog.Any(a.Key, redactHeader(v))
		case *url.URL:
			if v != nil {
				return slog.String(a.Key, redactURL(v))
			}
		case url.URL:
			return slog.String(a.Key, redactURL(&v))
		}
	}
	return a
}

func redactHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		if secretKey(k) {
			out[k] = []string{Redacted}
			continue
		}
		scrubbed := make([]string, len(vs))
		for i, v := range vs {
			scrubbed[i] = scrub(v)
		}
		out[k] = scrubbed
	}
	return out
}

func redactURL(u *url.URL) string {
	c := *u
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			if secretKey(k) || strings.EqualFold(k, "code") {
				q[k] = []string{Redacted}
			}
		}
		c.RawQuery = q.Encode()
	}
	return c.Redacted()
}
