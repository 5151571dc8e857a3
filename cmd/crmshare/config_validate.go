package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/crmshare/crmshare/handlers"
)

var (
	// JetStream names (streams, consumers, buckets): no spaces, dots, wildcards or separators.
	natsNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// validate checks the loaded config and returns every problem, with the line
// of the key it is about.
func (l *loader) validate(c *Config) []*Problem {
	var ps []*Problem
	bad := func(path, format string, args ...any) {
		ps = append(ps, &Problem{Line: l.lineOf(path), Path: path, Err: fmt.Errorf(format, args...)})
	}
	oneOf := func(path, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(path, "%q: want %s", v, strings.Join(allowed, ", "))
	}
	positive := func(path string, d time.Duration) {
		if d <= 0 {
			bad(path, "%s: must be more than 0", d)
		}
	}
	notNegative := func(path string, d time.Duration) {
		if d < 0 {
			bad(path, "%s: must not be negative", d)
		}
	}
	atLeast := func(path string, v, min int) {
		if v < min {
			bad(path, "%d: must be at least %d", v, min)
		}
	}
	hostPort := func(path, addr string) {
		if addr == "" {
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(path, "%q: want host:port (e.g. 127.0.0.1:8080): %v", addr, err)
		}
	}
	httpURL := func(path, v string) {
		if v == "" {
			return
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(path, "%q: want an absolute http(s) URL", v)
		}
	}
	subject := func(path, s string, wildcards bool) {
		if err := checkSubject(s, wildcards); err != nil {
			bad(path, "%q: %v", s, err)
		}
	}
	name := func(path, v string) {
		if !natsNameRE.MatchString(v) {
			bad(path, "%q: want letters, digits, '-' or '_'", v)
		}
	}

	// nats
	n := c.NATS
	if host, _, err := net.SplitHostPort(n.EmbeddedAddr); err != nil {
		bad("nats.embedded_addr", "%q: want host:port (e.g. 127.0.0.1:4222): %v", n.EmbeddedAddr, err)
	} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		bad("nats.embedded_addr", "%q: the embedded server listens on loopback only", n.EmbeddedAddr)
	}
	if n.URL != "embedded" {
		if n.URL == "" {
			bad("nats.url", `required: "embedded" or a server URL such as nats://127.0.0.1:4222`)
		}
		for u := range strings.SplitSeq(n.URL, ",") {
			if n.URL == "" {
				break
			}
			pu, err := url.Parse(strings.TrimSpace(u))
			if err != nil || pu.Host == "" || !oneOfStr(pu.Scheme, "nats", "tls", "ws", "wss") {
				bad("nats.url", "%q: want \"embedded\" or nats://, tls://, ws:// or wss:// URLs", strings.TrimSpace(u))
			}
		}
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		bad("nats.tls", "cert_file and key_file go together")
	}
	name("nats.stream.name", n.Stream.Name)
	if len(n.Stream.Subjects) == 0 {
		bad("nats.stream.subjects", "at least one subject")
	}
	for i, s := range n.Stream.Subjects {
		subject(fmt.Sprintf("nats.stream.subjects[%d]", i), s, true)
	}
	notNegative("nats.stream.max_age", n.Stream.MaxAge)
	positive("nats.stream.duplicate_window", n.Stream.DuplicateWindow)
	if n.Stream.MaxAge > 0 && n.Stream.DuplicateWindow > n.Stream.MaxAge {
		bad("nats.stream.duplicate_window", "%s: longer than max_age %s", n.Stream.DuplicateWindow, n.Stream.MaxAge)
	}
	if n.Stream.Replicas < 1 || n.Stream.Replicas > 5 {
		bad("nats.stream.replicas", "%d: want 1 to 5", n.Stream.Replicas)
	}
	name("nats.consumer.durable", n.Consumer.Durable)
	for i, s := range n.Consumer.FilterSubjects {
		subject(fmt.Sprintf("nats.consumer.filter_subjects[%d]", i), s, true)
	}
	positive("nats.consumer.ack_wait", n.Consumer.AckWait)
	atLeast("nats.consumer.max_deliver", n.Consumer.MaxDeliver, 1)
	if len(n.Consumer.Backoff) == 0 {
		bad("nats.consumer.backoff", "at least one delay")
	}
	for i, d := range n.Consumer.Backoff {
		positive(fmt.Sprintf("nats.consumer.backoff[%d]", i), d)
	}
	atLeast("nats.consumer.max_ack_pending", n.Consumer.MaxAckPending, 1)
	atLeast("nats.concurrency", n.Concurrency, 1)
	name("nats.ledger.bucket", n.Ledger.Bucket)
	notNegative("nats.ledger.ttl", n.Ledger.TTL)
	name("nats.dead_letter.stream", n.DeadLetter.Stream)
	if n.DeadLetter.Stream == n.Stream.Name {
		bad("nats.dead_letter.stream", "%q: must differ from nats.stream.name", n.DeadLetter.Stream)
	}
	subject("nats.dead_letter.subject", n.DeadLetter.Subject, false)
	if n.DeadLetter.Subject != "" {
		dlq := n.DeadLetter.Subject + ".>"
		for _, s := range n.Stream.Subjects {
			if subjectsOverlap(dlq, s) {
				bad("nats.dead_letter.subject", "%q: dead letters (%s) would land in the event stream (subject %q) and be consumed again", n.DeadLetter.Subject, dlq, s)
			}
		}
	}

	// zoho
	z := c.Zoho
	oneOf("zoho.api_version", z.APIVersion, "v2", "v2.1", "v8")
	oneOf("zoho.data_center", z.DataCenter, "us", "eu", "in", "au", "jp", "ca", "sa", "cn")
	httpURL("zoho.api_url", z.APIURL)
	httpURL("zoho.accounts_url", z.AccountsURL)
	if z.Emulator {
		hostPort("zoho.emulator_addr", z.EmulatorAddr)
	} else if z.EmulatorSeed != "" {
		bad("zoho.emulator_seed", "set, but zoho.emulator is false")
	}
	if !z.Emulator {
		if z.ClientID == "" {
			bad("zoho.client_id", "required (or set ZOHO_CLIENT_ID)")
		}
		if z.ClientSecret == "" {
			bad("zoho.client_secret", "required (or set ZOHO_CLIENT_SECRET)")
		}
		if z.RefreshToken == "" {
			bad("zoho.refresh_token", "required (or set ZOHO_REFRESH_TOKEN)")
		}
	}
	atLeast("zoho.max_concurrency", z.MaxConcurrency, 1)
	positive("zoho.timeout", z.Timeout)
	notNegative("zoho.users_cache_ttl", z.UsersCacheTTL)
	if z.Timeout > 0 && n.Consumer.AckWait > 0 && z.Timeout >= n.Consumer.AckWait {
		bad("zoho.timeout", "%s: must be shorter than nats.consumer.ack_wait %s, or JetStream redelivers events still in flight", z.Timeout, n.Consumer.AckWait)
	}

	// telemetry
	t := c.Telemetry
	if t.ServiceName == "" {
		bad("telemetry.service_name", "required")
	}
	oneOf("telemetry.traces", t.Traces, "otlp", "stdout", "none")
	hostPort("telemetry.metrics_addr", t.MetricsAddr)
	oneOf("telemetry.log_format", t.LogFormat, "json", "text")
	oneOf("telemetry.log_level", t.LogLevel, "debug", "info", "warn", "error")

	// ingress
	in := c.Ingress
	hostPort("ingress.addr", in.Addr)
	if in.MaxBodyBytes < 1 {
		bad("ingress.max_body_bytes", "%d: must be at least 1", in.MaxBodyBytes)
	}
	subject("ingress.subject_prefix", in.SubjectPrefix, false)
	if in.Addr != "" && in.SubjectPrefix != "" {
		probe := in.SubjectPrefix + ".x"
		captured := false
		for _, s := range n.Stream.Subjects {
			if subjectsOverlap(probe, s) {
				captured = true
			}
		}
		if !captured {
			bad("ingress.subject_prefix", "%q: events published under it are not in nats.stream.subjects", in.SubjectPrefix)
		}
	}

	// rules
	if _, err := handlers.NewRules(c.RulesConfig()); err != nil {
		ps = append(ps, rulesProblems(err)...)
	}
	return ps
}

// rulesProblems turns the rules engine's joined errors into problems.
func rulesProblems(err error) []*Problem {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	ps := make([]*Problem, 0, len(errs))
	for _, e := range errs {
		var ce *handlers.RuleConfigError
		if !errors.As(e, &ce) {
			ps = append(ps, &Problem{Path: "rules", Err: e})
			continue
		}
		p := &Problem{Line: ce.Line, Err: ce.Err}
		switch {
		case ce.Index < 0 && ce.Field == "api_version":
			p.Path = "zoho.api_version"
		case ce.Index < 0:
			p.Path = "rules." + ce.Field
		case ce.Rule != "":
			p.Path = fmt.Sprintf("rules[%d] %q: %s", ce.Index, ce.Rule, ce.Field)
		default:
			p.Path = fmt.Sprintf("rules[%d]: %s", ce.Index, ce.Field)
		}
		ps = append(ps, p)
	}
	return ps
}

func oneOfStr(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// checkSubject validates a NATS subject; wildcards allows '*' tokens and a
// final '>'.
func checkSubject(s string, wildcards bool) error {
	if s == "" {
		return errors.New("empty subject")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return errors.New("contains white space")
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return errors.New("empty token")
		case t == ">" || t == "*":
			if !wildcards {
				return errors.New("wildcards are not allowed here")
			}
			if t == ">" && i != len(tokens)-1 {
				return errors.New("'>' must be the last token")
			}
		case strings.ContainsAny(t, "*>"):
			return fmt.Errorf("token %q mixes a wildcard with text", t)
		}
	}
	return nil
}

// subjectsOverlap reports whether some subject matches both patterns.
func subjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(at) && i == len(bt):
			return true
		case i < len(at) && at[i] == ">": // '>' matches one or more tokens
			return i < len(bt)
		case i < len(bt) && bt[i] == ">":
			return i < len(at)
		case i == len(at) || i == len(bt):
			return false
		case at[i] == "*" || bt[i] == "*" || at[i] == bt[i]:
			continue
		default:
			return false
		}
	}
}
