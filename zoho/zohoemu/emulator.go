package zohoemu

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config configures an Emulator. Every zero value is a documented default.
type Config struct {
	// Seed is the initial org; nil means an empty org (no clients, users or
	// records) that LoadSeed or POST /_emu/seed can fill later.
	Seed *Seed
	// Latency is added to every CRM call (not to token or admin calls), while the
	// call holds its concurrency slot; Jitter adds a uniform random 0..Jitter on top.
	// Zero means none.
	Latency, Jitter time.Duration
	// ConcurrencyLimit caps simultaneous in-flight CRM calls: 0 means the seed
	// org's concurrency_limit (itself 0 = unlimited), <0 means unlimited.
	ConcurrencyLimit int
	// TokenTTL is the lifetime of an access token; 0 means one hour, as Zoho's.
	TokenTTL time.Duration
	// LegacyTokenReply makes the token endpoint answer in the older shape:
	// expires_in in milliseconds plus expires_in_sec in seconds.
	LegacyTokenReply bool
	// Now is the clock for token expiry, throttles, credits, scheduler windows and
	// shared_time; nil means time.Now.
	Now func() time.Time
	// RecentRequests is how many recent requests RequestStats keeps; 0 means 200.
	RecentRequests int
}

func (c *Config) setDefaults() {
	if c.TokenTTL == 0 {
		c.TokenTTL = time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RecentRequests == 0 {
		c.RecentRequests = 200
	}
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Latency < 0 || c.Jitter < 0 {
		errs = append(errs, errors.New("latency and jitter must not be negative"))
	}
	if c.TokenTTL < 0 {
		errs = append(errs, errors.New("token ttl must not be negative"))
	}
	if c.RecentRequests < 0 {
		errs = append(errs, errors.New("recent requests must not be negative"))
	}
	if c.Seed != nil {
		if err := c.Seed.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("seed: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Emulator is an emulated Zoho CRM org plus its accounts server. It is safe for
// concurrent use. Create it with New and serve it as an http.Handler.
type Emulator struct {
	cfg Config

	mu      sync.Mutex
	seeds   []*Seed // Config.Seed and every LoadSeed, replayed by Reset
	org     Org
	clients map[string]Client // by client ID
	refresh map[string]*refreshState
	tokens  map[string]*accessToken
	users   map[string]User
	order   []string // user IDs in seed order
	groups  map[string]Group
	roles   map[string]Role
	records map[string]*record // by module + "/" + id

	faults    Faults
	ruleState []ruleState
	rng       *rand.Rand

	stats        statsState
	inFlight     int
	creditsUsed  int
	creditWindow time.Time
	seq          int64
	maxUsers     int
	minted       int
	issued       []string // every access token minted, oldest first, for IssuedTokens
}

type record struct {
	module, id, name, owner string
	parent                  *Ref
	visibleTo               map[string]bool
	shares                  []*share // direct shares
	lastWrite               time.Time
}

type share struct {
	Entry
	by  string // user ID of whoever shared it
	at  time.Time
	seq int64
}

func recordKey(module, id string) string { return module + "/" + id }

// New returns an emulator loaded with cfg.Seed.
func New(cfg Config) (*Emulator, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("zohoemu: %w", err)
	}
	e := &Emulator{cfg: cfg}
	e.clearState()
	e.resetFaults(Faults{})
	if cfg.Seed != nil {
		if err := e.applySeed(cfg.Seed); err != nil {
			return nil, fmt.Errorf("zohoemu: seed: %w", err)
		}
		e.seeds = append(e.seeds, cfg.Seed)
	}
	return e, nil
}

func (e *Emulator) clearState() {
	e.org = Org{}
	e.clients = map[string]Client{}
	e.refresh = map[string]*refreshState{}
	if e.tokens == nil {
		e.tokens = map[string]*accessToken{}
	}
	e.users = map[string]User{}
	e.order = nil
	e.groups = map[string]Group{}
	e.roles = map[string]Role{}
	e.records = map[string]*record{}
}

// LoadSeed merges s into the org: items whose ID matches an existing item
// replace it (a record's shares and all), others are added. Reset keeps it.
func (e *Emulator) LoadSeed(s *Seed) error {
	if s == nil {
		return errors.New("zohoemu: load seed: nil seed")
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("zohoemu: load seed: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.applySeed(s); err != nil {
		return fmt.Errorf("zohoemu: load seed: %w", err)
	}
	e.seeds = append(e.seeds, s)
	return nil
}

// applySeed checks the seed's references against the org it is merged into,
// then merges it. It changes nothing when a check fails.
func (e *Emulator) applySeed(s *Seed) error {
	userOK := func(id string) bool {
		if _, ok := e.users[id]; ok {
			return true
		}
		return slices.ContainsFunc(s.Users, func(u User) bool { return u.ID == id })
	}
	groupOK := func(id string) bool {
		if _, ok := e.groups[id]; ok {
			return true
		}
		return slices.ContainsFunc(s.Groups, func(g Group) bool { return g.ID == id })
	}
	roleOK := func(id string) bool {
		if _, ok := e.roles[id]; ok {
			return true
		}
		return slices.ContainsFunc(s.Roles, func(r Role) bool { return r.ID == id })
	}
	recordOK := func(ref Ref) bool {
		if _, ok := e.records[recordKey(ref.Module, ref.ID)]; ok {
			return true
		}
		return slices.ContainsFunc(s.Records, func(r Record) bool { return r.Module == ref.Module && r.ID == ref.ID })
	}
	var errs []error
	for _, c := range s.Clients {
		if !userOK(c.UserID) {
			errs = append(errs, fmt.Errorf("client %q: unknown user_id %q", c.ClientID, c.UserID))
		}
		if old, ok := e.refresh[c.RefreshToken]; ok && old.clientID != c.ClientID {
			errs = append(errs, fmt.Errorf("client %q: refresh token already belongs to client %q", c.ClientID, old.clientID))
		}
	}
	for _, u := range s.Users {
		if u.Role != "" && !roleOK(u.Role) {
			errs = append(errs, fmt.Errorf("user %q: unknown role %q", u.ID, u.Role))
		}
	}
	for _, r := range s.Records {
		name := r.Module + "/" + r.ID
		if r.Owner != "" && !userOK(r.Owner) {
			errs = append(errs, fmt.Errorf("record %s: unknown owner %q", name, r.Owner))
		}
		if r.Parent != nil && !recordOK(*r.Parent) {
			errs = append(errs, fmt.Errorf("record %s: unknown parent %s/%s", name, r.Parent.Module, r.Parent.ID))
		}
		for _, id := range r.VisibleTo {
			if !userOK(id) {
				errs = append(errs, fmt.Errorf("record %s: visible_to: unknown user %q", name, id))
			}
		}
		for j, sh := range r.Shares {
			ok := true
			switch sh.Type {
			case "users":
				ok = userOK(sh.ID)
			case "groups":
				ok = groupOK(sh.ID)
			case "roles":
				ok = roleOK(sh.ID)
			}
			if !ok {
				errs = append(errs, fmt.Errorf("record %s: shares[%d]: unknown %s id %q", name, j, sh.Type, sh.ID))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	if s.Org != nil {
		e.org = *s.Org
	}
	for _, u := range s.Users {
		if _, ok := e.users[u.ID]; !ok {
			e.order = append(e.order, u.ID)
		}
		e.users[u.ID] = u
	}
	for _, g := range s.Groups {
		e.groups[g.ID] = g
	}
	for _, r := range s.Roles {
		e.roles[r.ID] = r
	}
	for _, c := range s.Clients {
		if old, ok := e.clients[c.ClientID]; ok && old.RefreshToken != c.RefreshToken {
			e.revokeLocked(old.RefreshToken)
			delete(e.refresh, old.RefreshToken)
		}
		e.clients[c.ClientID] = c
		if rs, ok := e.refresh[c.RefreshToken]; ok {
			rs.clientID = c.ClientID
			rs.revoked = false
		} else {
			e.refresh[c.RefreshToken] = &refreshState{clientID: c.ClientID}
		}
	}
	now := e.cfg.Now()
	for _, r := range s.Records {
		rec := &record{module: r.Module, id: r.ID, name: r.Name, owner: r.Owner, visibleTo: map[string]bool{}}
		if r.Parent != nil {
			p := *r.Parent
			rec.parent = &p
		}
		for _, id := range r.VisibleTo {
			rec.visibleTo[id] = true
		}
		for _, sh := range r.Shares {
			e.seq++
			rec.shares = append(rec.shares, &share{Entry: sh, by: r.Owner, at: now, seq: e.seq})
		}
		e.records[recordKey(r.Module, r.ID)] = rec
		e.noteUsers(rec)
	}
	return nil
}

// noteUsers keeps MaxUsersEverShared up to date.
func (e *Emulator) noteUsers(rec *record) {
	if n := countType(rec.shares, "users"); n > e.maxUsers {
		e.maxUsers = n
	}
}

func countType(shares []*share, typ string) int {
	n := 0
	for _, s := range shares {
		if s.Type == typ {
			n++
		}
	}
	return n
}

func sortedEntries(shares []*share) []Entry {
	out := make([]Entry, 0, len(shares))
	for _, s := range shares {
		out = append(out, s.Entry)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Shares returns the record's direct shares sorted by recipient type, then ID;
// nil when the record has none or does not exist. Inherited access is not
// included.
func (e *Emulator) Shares(module, recordID string) []Entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, ok := e.records[recordKey(module, recordID)]
	if !ok || len(rec.shares) == 0 {
		return nil
	}
	return sortedEntries(rec.shares)
}

// State is a snapshot of the org's records and their direct shares, sorted by
// module then record ID.
type State struct {
	Records        []RecordState `json:"records"`
	CreditsUsed    int           `json:"credits_used"`
	InFlight       int           `json:"in_flight"`
	TokenRefreshes int           `json:"token_refreshes"`
	ActiveTokens   int           `json:"active_tokens"`
}

// RecordState is one record in a State.
type RecordState struct {
	Module string  `json:"module"`
	ID     string  `json:"id"`
	Name   string  `json:"name,omitempty"`
	Owner  string  `json:"owner,omitempty"`
	Parent *Ref    `json:"parent,omitempty"`
	Shares []Entry `json:"shares"` // direct shares, sorted as by Shares; never null
}

// State returns every record's direct shares.
func (e *Emulator) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := State{
		Records:        make([]RecordState, 0, len(e.records)),
		CreditsUsed:    e.creditsUsed,
		InFlight:       e.inFlight,
		TokenRefreshes: e.minted,
	}
	now := e.cfg.Now()
	for _, t := range e.tokens {
		if t.live(now) {
			st.ActiveTokens++
		}
	}
	for _, rec := range e.records {
		rs := RecordState{Module: rec.module, ID: rec.id, Name: rec.name, Owner: rec.owner, Shares: sortedEntries(rec.shares)}
		if rec.parent != nil {
			p := *rec.parent
			rs.Parent = &p
		}
		st.Records = append(st.Records, rs)
	}
	slices.SortFunc(st.Records, func(a, b RecordState) int {
		return cmp.Or(cmp.Compare(a.Module, b.Module), cmp.Compare(a.ID, b.ID))
	})
	return st
}

// SetShares replaces the record's direct shares as a person would in Zoho's UI:
// no token, no credits, no scheduler window, but the same caps (10 users,
// 5 groups, 5 roles) and only known, active recipients. An empty list removes
// every direct share.
func (e *Emulator) SetShares(module, recordID string, entries []Entry) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, ok := e.records[recordKey(module, recordID)]
	if !ok {
		return fmt.Errorf("zohoemu: set shares: no record %s/%s", module, recordID)
	}
	var errs []error
	seen := map[string]bool{}
	for i, en := range entries {
		if err := en.validate(); err != nil {
			errs = append(errs, fmt.Errorf("entry %d: %w", i, err))
			continue
		}
		if en.Type == "public" && len(entries) > 1 {
			errs = append(errs, fmt.Errorf("entry %d: a public share must be the only entry", i))
		}
		k := en.Type + ":" + en.ID
		if seen[k] {
			errs = append(errs, fmt.Errorf("entry %d: %s listed twice", i, k))
		}
		seen[k] = true
		switch en.Type {
		case "users":
			u, ok := e.users[en.ID]
			if !ok || u.Status != "active" || !u.Confirm {
				errs = append(errs, fmt.Errorf("entry %d: no active confirmed user %q", i, en.ID))
			}
		case "groups":
			if _, ok := e.groups[en.ID]; !ok {
				errs = append(errs, fmt.Errorf("entry %d: no group %q", i, en.ID))
			}
		case "roles":
			if _, ok := e.roles[en.ID]; !ok {
				errs = append(errs, fmt.Errorf("entry %d: no role %q", i, en.ID))
			}
		}
	}
	counts := map[string]int{}
	for _, en := range entries {
		counts[en.Type]++
	}
	for typ, limit := range shareLimits {
		if counts[typ] > limit {
			errs = append(errs, fmt.Errorf("%d %s exceed the limit of %d", counts[typ], typ, limit))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("zohoemu: set shares %s/%s: %w", module, recordID, err)
	}
	now := e.cfg.Now()
	old := map[string]*share{}
	for _, s := range rec.shares {
		old[s.Type+":"+s.ID] = s
	}
	rec.shares = rec.shares[:0:0]
	for _, en := range entries {
		if s, ok := old[en.Type+":"+en.ID]; ok && s.Entry == en {
			rec.shares = append(rec.shares, s)
			continue
		}
		e.seq++
		rec.shares = append(rec.shares, &share{Entry: en, by: rec.owner, at: now, seq: e.seq})
	}
	e.noteUsers(rec)
	return nil
}

// shareLimits are Zoho's per-record caps on direct shares by recipient type.
var shareLimits = map[string]int{"users": 10, "groups": 5, "roles": 5}

// Reset puts the org back to its seeds (Config.Seed plus every LoadSeed), and
// clears faults, request counters, credits, the token refresh throttle and
// MaxUsersEverShared. Issued access tokens stay valid.
func (e *Emulator) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clearState()
	for _, s := range e.seeds {
		// Each seed applied cleanly before in this order, so it applies again.
		_ = e.applySeed(s)
	}
	for _, t := range e.tokens {
		if rs, ok := e.refresh[t.refresh]; ok && t.live(e.cfg.Now()) {
			rs.active = append(rs.active, t)
		}
	}
	for _, rs := range e.refresh {
		slices.SortFunc(rs.active, func(a, b *accessToken) int { return cmp.Compare(a.seq, b.seq) })
	}
	e.resetFaults(Faults{})
	e.stats = statsState{}
	e.creditsUsed = 0
	e.creditWindow = time.Time{}
	e.maxUsers = 0
	e.minted = 0
	for _, rec := range e.records {
		e.noteUsers(rec)
	}
}

// MaxUsersEverShared returns the highest number of direct user shares any
// record has had since New or Reset.
func (e *Emulator) MaxUsersEverShared() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.maxUsers
}

// ServeHTTP serves the CRM API under /crm/, the token endpoints under /oauth/v2/
// and the admin API under /_emu/.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/_emu/"):
		e.serveAdmin(w, r)
	case p == "/oauth/v2/token", p == "/oauth/v2/token/revoke":
		e.serveOAuth(w, r)
	case strings.HasPrefix(p, "/crm/"):
		e.serveCRM(w, r)
	default:
		rep := errorReply(http.StatusNotFound, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one.", nil)
		e.record(r, "other", rep)
		rep.write(w)
	}
}
