package zohoemu

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dialect is the API version a call came in on; each has its own wire shapes.
type dialect int

const (
	dialectV2 dialect = iota + 1
	dialectV21
	dialectV8
)

func parseDialect(v string) (dialect, bool) {
	switch v {
	case "v2":
		return dialectV2, true
	case "v2.1":
		return dialectV21, true
	case "v8":
		return dialectV8, true
	}
	return 0, false
}

// standardModules are the modules Zoho documents as shareable. Any module that
// has a record in the seed is known too (custom modules).
var standardModules = []string{
	"Leads", "Accounts", "Contacts", "Deals", "Campaigns", "Cases", "Solutions",
	"Products", "Vendors", "Price_Books", "Quotes", "Sales_Orders", "Purchase_Orders", "Invoices",
}

// activityModules are only shareable through a parent record; Zoho answers
// OAUTH_SCOPE_MISMATCH for them.
var activityModules = []string{"Tasks", "Events", "Calls"}

const maxBody = 1 << 20

// shareCall carries one share request through validation.
type shareCall struct {
	d      dialect
	tok    *accessToken
	rec    *record
	now    time.Time
	method string
}

// serveShare handles /crm/{v}/{module}/{record_id}/actions/share. It runs under
// the emulator's lock.
func (e *Emulator) serveShare(d dialect, r *http.Request, tok *accessToken, module, recordID string) *reply {
	op, ok := map[string]string{
		http.MethodPost: "CREATE", http.MethodGet: "READ", http.MethodPut: "UPDATE", http.MethodDelete: "DELETE",
	}[r.Method]
	if !ok {
		return errorReply(http.StatusBadRequest, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one", nil)
	}
	for _, m := range activityModules {
		if strings.EqualFold(m, module) {
			return errorReply(http.StatusUnauthorized, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL", nil)
		}
	}
	canon, custom, ok := e.canonicalModule(module)
	if !ok {
		msg := "The module name given seems to be invalid"
		if d == dialectV8 {
			msg = "the module name given seems to be invalid"
		}
		return errorReply(http.StatusBadRequest, "INVALID_MODULE", msg, map[string]any{"resource_path_index": 0})
	}
	scopes := []string{"ZohoCRM.share.all", "ZohoCRM.share." + moduleScope(canon) + ".ALL", "ZohoCRM.share." + moduleScope(canon) + "." + op}
	if custom {
		scopes = append(scopes, "ZohoCRM.share.custom.ALL", "ZohoCRM.share.custom."+op)
	}
	if !tok.hasScope(scopes...) {
		return errorReply(http.StatusUnauthorized, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL", nil)
	}
	rec, ok := e.records[recordKey(canon, recordID)]
	if !ok {
		return errorReply(http.StatusBadRequest, "INVALID_DATA", "ENTITY_ID_INVALID", map[string]any{"resource_path_index": 1})
	}
	c := &shareCall{d: d, tok: tok, rec: rec, now: e.cfg.Now(), method: r.Method}
	if r.Method == http.MethodGet {
		return e.getShares(c, r)
	}
	e.stats.writes++
	if u, ok := e.users[tok.userID]; ok && u.Profile != "" && u.Profile != "Administrator" && rec.owner != tok.userID {
		return errorReply(http.StatusForbidden, "NO_PERMISSION", "Permission denied to share records", nil)
	}
	if w := time.Duration(e.faults.SchedulerWindow); w > 0 && !rec.lastWrite.IsZero() && c.now.Sub(rec.lastWrite) < w {
		status := http.StatusBadRequest
		if d == dialectV8 {
			status = http.StatusForbidden
		}
		return errorReply(status, "CANNOT_PROCESS", "Scheduler is running", nil)
	}
	var rp *reply
	switch r.Method {
	case http.MethodDelete:
		rp = e.revokeAll(c)
	default:
		rp = e.writeShares(c, r)
	}
	if rp.applied {
		rec.lastWrite = c.now
		e.noteUsers(rec)
	}
	return rp
}

func (e *Emulator) canonicalModule(module string) (name string, custom, ok bool) {
	for _, m := range standardModules {
		if strings.EqualFold(m, module) {
			return m, false, true
		}
	}
	for _, rec := range e.records {
		if strings.EqualFold(rec.module, module) {
			return rec.module, true, true
		}
	}
	return "", false, false
}

// revokeAll implements DELETE: every direct share goes; inherited access stays.
func (e *Emulator) revokeAll(c *shareCall) *reply {
	if len(c.rec.shares) == 0 {
		if c.d == dialectV8 {
			return errorReply(http.StatusBadRequest, "CANNOT_PROCESS", "No sharing through this record is available to revoke", nil)
		}
		return errorReply(http.StatusBadRequest, "BAD_REQUEST", "No sharing through this record is available to revoke.", nil)
	}
	c.rec.shares = nil
	rp := jsonReply(http.StatusOK, map[string]any{"share": success("Sharing Revoked", map[string]any{"id": c.rec.id})}, "SUCCESS")
	rp.applied = true
	return rp
}

// entryResult is the outcome of one request entry.
type entryResult struct {
	entry  Entry
	status int // HTTP status this error has when it stands alone
	err    *apiError
}

func entryError(status int, code, message string, details map[string]any) entryResult {
	ae := newError(code, message, details)
	return entryResult{status: status, err: &ae}
}

// writeShares implements POST (add) and PUT (replace).
func (e *Emulator) writeShares(c *shareCall, r *http.Request) *reply {
	raws, rp := decodeShareBody(c.d, r)
	if rp != nil {
		return rp
	}
	results := make([]entryResult, len(raws))
	publicAt := -1
	for i, raw := range raws {
		results[i] = parseEntry(c.d, i, raw)
		if results[i].err == nil && results[i].entry.Type == "public" {
			publicAt = i
		}
	}
	if publicAt >= 0 && len(raws) > 1 {
		return errorReply(http.StatusBadRequest, "AMBIGUITY_DURING_PROCESSING", "For public sharing, more than one json object is given",
			map[string]any{"ambiguity_due_to": []map[string]any{{"api_name": "type", "json_path": fmt.Sprintf("$.share[%d].type", publicAt)}}})
	}

	put := c.method == http.MethodPut
	current := map[string]*share{}
	for _, s := range c.rec.shares {
		current[s.Type+":"+s.ID] = s
	}
	// counts holds the direct shares by type the record will have.
	counts := map[string]int{}
	if !put {
		for _, s := range c.rec.shares {
			counts[s.Type]++
		}
	}
	seen := map[string]bool{}
	for i := range results {
		res := &results[i]
		if res.err != nil {
			continue
		}
		en := res.entry
		path := recipientPath(c.d, i)
		if bad := e.checkRecipient(c, en, path); bad != nil {
			*res = *bad
			res.entry = en
			continue
		}
		key := en.Type + ":" + en.ID
		switch {
		case seen[key] && put:
			*res = entryError(http.StatusBadRequest, "DUPLICATE_DATA", "duplicate data", map[string]any{"api_name": "id", "json_path": path})
			res.entry = en
			continue
		case seen[key], !put && current[key] != nil, !put && en.Type != "public" && hasPublic(c.rec):
			*res = entryError(http.StatusBadRequest, "INVALID_DATA", "record is already visible to the user.", map[string]any{"api_name": "id", "json_path": path})
			res.entry = en
			continue
		}
		if limit, ok := shareLimits[en.Type]; ok && c.d == dialectV8 && counts[en.Type] >= limit {
			*res = entryError(http.StatusBadRequest, "LIMIT_EXCEEDED", fmt.Sprintf("Cannot share a record to more than %d %s", limit, en.Type),
				map[string]any{"api_name": "type", "limit": limit, "json_path": fmt.Sprintf("$.share[%d].shared_with.type", i)})
			res.entry = en
			continue
		}
		seen[key] = true
		counts[en.Type]++
	}
	if c.d != dialectV8 && counts["users"] > shareLimits["users"] {
		msg := "The record sharing limit has been reached"
		if c.d == dialectV21 {
			msg = "The record sharing has reached its limit"
		}
		return errorReply(http.StatusForbidden, "SHARE_LIMIT_EXCEEDED", msg, nil)
	}

	var ok, failed int
	for _, res := range results {
		if res.err == nil {
			ok++
		} else {
			failed++
		}
	}
	applied := false
	if ok > 0 {
		applied = e.applyEntries(c, results, current, put)
	}
	out := make([]apiError, len(results))
	firstErr := -1
	for i, res := range results {
		if res.err == nil {
			out[i] = success("record will be shared successfully", nil)
		} else {
			out[i] = *res.err
			if firstErr < 0 {
				firstErr = i
			}
		}
	}
	var status int
	code := "SUCCESS"
	if firstErr >= 0 {
		code = out[firstErr].Code
	}
	switch {
	case c.d == dialectV8 && failed == 0:
		status = http.StatusCreated
	case c.d == dialectV8 && ok > 0:
		status = http.StatusMultiStatus
	case c.d == dialectV8:
		status = http.StatusBadRequest
	case ok > 0:
		status = http.StatusOK
	default:
		status = results[firstErr].status
	}
	rp = jsonReply(status, map[string]any{"share": out}, code)
	rp.applied = applied
	return rp
}

func hasPublic(rec *record) bool {
	return slices.ContainsFunc(rec.shares, func(s *share) bool { return s.Type == "public" })
}

// applyEntries changes the record's direct shares and reports whether anything changed.
func (e *Emulator) applyEntries(c *shareCall, results []entryResult, current map[string]*share, put bool) bool {
	mk := func(en Entry) *share {
		e.seq++
		return &share{Entry: en, by: c.tok.userID, at: c.now, seq: e.seq}
	}
	var next []*share
	if put {
		kept := map[string]bool{}
		for _, res := range results {
			key := res.entry.Type + ":" + res.entry.ID
			old := current[key]
			switch {
			case res.entry.Type == "" || kept[key]:
				continue
			case res.err == nil && old != nil && old.Entry == res.entry:
				next = append(next, old)
			case res.err == nil:
				next = append(next, mk(res.entry))
			case old != nil:
				// A refused entry leaves that recipient's share as it was.
				next = append(next, old)
			default:
				continue
			}
			kept[key] = true
		}
	} else {
		next = slices.Clone(c.rec.shares)
		for _, res := range results {
			if res.err != nil {
				continue
			}
			if res.entry.Type == "public" {
				next = nil // a public record has no individual shares
			}
			next = append(next, mk(res.entry))
		}
	}
	changed := len(next) != len(c.rec.shares)
	for i := 0; !changed && i < len(next); i++ {
		changed = next[i] != c.rec.shares[i]
	}
	c.rec.shares = next
	return changed
}

// checkRecipient refuses unknown or inactive recipients and, outside the
// record's own direct list, recipients who already see the record.
func (e *Emulator) checkRecipient(c *shareCall, en Entry, path string) *entryResult {
	var bad entryResult
	switch en.Type {
	case "users":
		u, ok := e.users[en.ID]
		switch {
		case !ok || u.Status == "deleted":
			bad = entryError(http.StatusBadRequest, "INVALID_DATA", "invalid user Id", map[string]any{"api_name": "id", "json_path": path})
		case u.Status != "active" || !u.Confirm:
			bad = entryError(http.StatusBadRequest, "INVALID_DATA", "cannot share to the user", map[string]any{"api_name": "id", "json_path": path})
		case e.visibleElsewhere(c.rec, u):
			bad = entryError(http.StatusBadRequest, "INVALID_DATA", "record is already visible to the user.", map[string]any{"api_name": "id", "json_path": path})
		default:
			return nil
		}
	case "groups":
		if _, ok := e.groups[en.ID]; ok {
			return nil
		}
		bad = entryError(http.StatusBadRequest, "INVALID_DATA", "invalid group Id", map[string]any{"api_name": "id", "json_path": path})
	case "roles":
		if _, ok := e.roles[en.ID]; ok {
			return nil
		}
		bad = entryError(http.StatusBadRequest, "INVALID_DATA", "invalid role Id", map[string]any{"api_name": "id", "json_path": path})
	default:
		return nil
	}
	return &bad
}

// visibleElsewhere reports access that does not come from the record's own
// direct shares: ownership, other mechanisms listed in the seed, a shared role,
// or a parent's share with related records.
func (e *Emulator) visibleElsewhere(rec *record, u User) bool {
	if rec.owner == u.ID || rec.visibleTo[u.ID] {
		return true
	}
	if u.Role != "" && slices.ContainsFunc(rec.shares, func(s *share) bool { return s.Type == "roles" && s.ID == u.Role }) {
		return true
	}
	for _, in := range e.inherited(rec) {
		if in.s.Type == "users" && in.s.ID == u.ID {
			return true
		}
	}
	return false
}

type inheritedShare struct {
	s       *share
	through *record
}

// inherited returns the shares that reach rec from its ancestors' shares with
// share_related_records true.
func (e *Emulator) inherited(rec *record) []inheritedShare {
	var out []inheritedShare
	p := rec.parent
	for depth := 0; p != nil && depth < 8; depth++ {
		parent, ok := e.records[recordKey(p.Module, p.ID)]
		if !ok || parent == rec {
			break
		}
		for _, s := range parent.shares {
			if s.ShareRelated {
				out = append(out, inheritedShare{s: s, through: parent})
			}
		}
		p = parent.parent
	}
	return out
}

func recipientPath(d dialect, i int) string {
	if d == dialectV8 {
		return fmt.Sprintf("$.share[%d].shared_with.id", i)
	}
	return fmt.Sprintf("$.share[%d].user.id", i)
}

// decodeShareBody reads {"share":[...]} (any or no Content-Type) and the v8
// top-level flags, returning the raw entries or the whole-request error.
func decodeShareBody(d dialect, r *http.Request) ([]json.RawMessage, *reply) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(b) > maxBody {
		return nil, errorReply(http.StatusBadRequest, "INVALID_DATA", "body", nil)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		return nil, errorReply(http.StatusBadRequest, "INVALID_DATA", "body", nil)
	}
	rawShare, ok := top["share"]
	if !ok || string(rawShare) == "null" {
		return nil, errorReply(http.StatusBadRequest, "MANDATORY_NOT_FOUND", mandatoryMessage(d), map[string]any{"api_name": "share", "json_path": "$.share"})
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(rawShare, &raws); err != nil {
		return nil, errorReply(http.StatusBadRequest, "INVALID_DATA", "invalid data",
			map[string]any{"api_name": "share", "json_path": "$.share", "expected_data_type": "jsonarray"})
	}
	if len(raws) == 0 {
		return nil, errorReply(http.StatusBadRequest, "INVALID_DATA", "invalid data",
			map[string]any{"api_name": "share", "json_path": "$.share", "minimum_length": 1})
	}
	if d == dialectV8 {
		if len(raws) > 20 {
			return nil, errorReply(http.StatusBadRequest, "INVALID_DATA", "invalid data",
				map[string]any{"api_name": "share", "json_path": "$.share", "maximum_length": 20})
		}
		for _, k := range []string{"notify_on_completion", "notify_shared_members", "notify"} {
			if v, ok := top[k]; ok {
				var flag bool
				if json.Unmarshal(v, &flag) != nil {
					return nil, errorReply(http.StatusBadRequest, "INVALID_DATA", "invalid data",
						map[string]any{"api_name": k, "json_path": "$." + k, "expected_data_type": "boolean"})
				}
			}
		}
	}
	return raws, nil
}

func mandatoryMessage(d dialect) string {
	if d == dialectV8 {
		return "required field not found"
	}
	return "Mandatory fields missing"
}

// parseEntry checks one request entry's shape in the dialect's terms.
func parseEntry(d dialect, i int, raw json.RawMessage) entryResult {
	at := func(k string) string { return fmt.Sprintf("$.share[%d].%s", i, k) }
	missing := func(apiName, path string) entryResult {
		return entryError(http.StatusBadRequest, "MANDATORY_NOT_FOUND", mandatoryMessage(d), map[string]any{"api_name": apiName, "json_path": path})
	}
	invalid := func(apiName, path string, extra map[string]any) entryResult {
		det := map[string]any{"api_name": apiName, "json_path": path}
		for k, v := range extra {
			det[k] = v
		}
		return entryError(http.StatusBadRequest, "INVALID_DATA", "invalid data", det)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return invalid("share", fmt.Sprintf("$.share[%d]", i), map[string]any{"expected_data_type": "jsonobject"})
	}
	var en Entry

	typ := "private"
	if v, ok := m["type"]; ok {
		if json.Unmarshal(v, &typ) != nil || (typ != "private" && typ != "public") {
			if d == dialectV8 {
				return invalid("type", at("type"), map[string]any{"regex": "private|public"})
			}
			return entryError(http.StatusBadRequest, "INVALID_DATA", `Either the value for "permission" or the "type" key is incorrect.`,
				map[string]any{"api_name": "type", "json_path": at("type")})
		}
	} else if d == dialectV8 {
		return missing("type", at("type"))
	}

	if typ == "public" {
		en.Type = "public"
		if _, ok := m["shared_with"]; ok && d == dialectV8 {
			return invalid("shared_with", at("shared_with"), map[string]any{"dependee": map[string]any{"api_name": "type", "json_path": at("type")}})
		}
	} else if d == dialectV8 {
		v, ok := m["shared_with"]
		if !ok || string(v) == "null" {
			return missing("shared_with", at("shared_with"))
		}
		var sw map[string]json.RawMessage
		if json.Unmarshal(v, &sw) != nil || sw == nil {
			return invalid("shared_with", at("shared_with"), map[string]any{"expected_data_type": "jsonobject"})
		}
		tv, ok := sw["type"]
		if !ok {
			return missing("type", at("shared_with.type"))
		}
		if json.Unmarshal(tv, &en.Type) != nil || shareLimits[en.Type] == 0 {
			return invalid("type", at("shared_with.type"), map[string]any{"regex": "users|groups|roles"})
		}
		id, res := decodeID(sw, "id", at("shared_with.id"), missing, invalid)
		if res != nil {
			return *res
		}
		en.ID = id
	} else {
		v, ok := m["user"]
		if !ok || string(v) == "null" {
			return missing("user", at("user"))
		}
		var u map[string]json.RawMessage
		if json.Unmarshal(v, &u) != nil || u == nil {
			return invalid("user", at("user"), map[string]any{"expected_data_type": "jsonobject"})
		}
		id, res := decodeID(u, "id", at("user.id"), missing, invalid)
		if res != nil {
			return *res
		}
		en.Type, en.ID = "users", id
	}

	res := checkPermission(d, m, en, at, missing, invalid)
	res.entry.Type, res.entry.ID = en.Type, en.ID
	return res
}

// checkPermission reads permission and share_related_records once the
// recipient is known; a failure still names the recipient, so a refused PUT
// entry can keep what its recipient had.
func checkPermission(d dialect, m map[string]json.RawMessage, en Entry, at func(string) string,
	missing func(string, string) entryResult, invalid func(string, string, map[string]any) entryResult) entryResult {
	pv, ok := m["permission"]
	if !ok || string(pv) == "null" {
		return missing("permission", at("permission"))
	}
	if json.Unmarshal(pv, &en.Permission) != nil || !validPermission(en.Permission) {
		switch d {
		case dialectV8:
			return invalid("permission", at("permission"), map[string]any{"regex": "read_only|read_write|full_access"})
		case dialectV2:
			// The v2 page documents this error with HTTP 200.
			return entryError(http.StatusOK, "INVALID_DATA", "Permission is invalid", map[string]any{"api_name": "permission", "json_path": at("permission")})
		default:
			return entryError(http.StatusBadRequest, "INVALID_DATA", "Permission is invalid", map[string]any{"api_name": "permission", "json_path": at("permission")})
		}
	}
	if v, ok := m["share_related_records"]; ok && string(v) != "null" {
		if json.Unmarshal(v, &en.ShareRelated) != nil {
			return invalid("share_related_records", at("share_related_records"), map[string]any{"expected_data_type": "boolean"})
		}
	}
	return entryResult{entry: en}
}

// decodeID reads an ID given as a JSON string (as Zoho sends) or a number (as
// Zoho's SDKs send).
func decodeID(m map[string]json.RawMessage, key, path string,
	missing func(string, string) entryResult, invalid func(string, string, map[string]any) entryResult) (string, *entryResult) {
	v, ok := m[key]
	if !ok || string(v) == "null" {
		r := missing(key, path)
		return "", &r
	}
	var s string
	if json.Unmarshal(v, &s) == nil && s != "" {
		return s, nil
	}
	var n json.Number
	if json.Unmarshal(v, &n) == nil {
		if _, err := strconv.ParseUint(n.String(), 10, 64); err == nil {
			return n.String(), nil
		}
	}
	r := invalid(key, path, map[string]any{"expected_data_type": "bigint"})
	return "", &r
}

// getShares implements GET: direct and inherited entries, 204 when there are none.
func (e *Emulator) getShares(c *shareCall, r *http.Request) *reply {
	q := r.URL.Query()
	notMatched := func(name string) *reply {
		return errorReply(http.StatusBadRequest, "PATTERN_NOT_MATCHED", "Please check whether the input values are correct", map[string]any{"api_name": name})
	}
	view := q.Get("view")
	switch {
	case view == "", view == "summary":
	case view == "manage" && c.d != dialectV8:
	default:
		return notMatched("view")
	}
	onlyUser := q.Get("sharedTo")
	if c.d == dialectV8 {
		switch q.Get("approved") {
		case "", "true", "both":
		case "false":
			return &reply{status: http.StatusNoContent, code: "NO_CONTENT"} // no pending entries exist here
		default:
			return notMatched("approved")
		}
		switch q.Get("current_user") {
		case "", "false":
		case "true":
			onlyUser = c.tok.userID
		default:
			return notMatched("current_user")
		}
	}

	type item struct {
		s       *share
		through *record
	}
	var items []item
	for _, s := range c.rec.shares {
		items = append(items, item{s, c.rec})
	}
	for _, in := range e.inherited(c.rec) {
		items = append(items, item{in.s, in.through})
	}
	items = slices.DeleteFunc(items, func(it item) bool {
		if onlyUser != "" && (it.s.Type != "users" || it.s.ID != onlyUser) {
			return true
		}
		// v2 and v2.1 have no shape for group and role recipients.
		return c.d != dialectV8 && (it.s.Type == "groups" || it.s.Type == "roles")
	})
	if len(items) == 0 {
		return &reply{status: http.StatusNoContent, code: "NO_CONTENT"}
	}
	// Latest share first, as Zoho lists them.
	slices.SortStableFunc(items, func(a, b item) int { return int(b.s.seq - a.s.seq) })
	entries := make([]any, 0, len(items))
	for _, it := range items {
		entries = append(entries, e.wireEntry(c.d, it.s, it.through))
	}
	body := map[string]any{"share": entries}
	if view == "manage" {
		var shareable []any
		for _, id := range e.order {
			u := e.users[id]
			if u.Status != "active" || !u.Confirm || e.visibleElsewhere(c.rec, u) ||
				slices.ContainsFunc(c.rec.shares, func(s *share) bool { return s.Type == "users" && s.ID == id }) {
				continue
			}
			shareable = append(shareable, v2User{ID: u.ID, FullName: u.FullName, ZUID: zuid(u)})
		}
		body["shareable_user"] = shareable
	}
	return jsonReply(http.StatusOK, body, "SUCCESS")
}

type v8Principal struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	Type string `json:"type,omitempty"`
	ZUID string `json:"zuid,omitempty"`
}

type v2User struct {
	ID       string `json:"id"`
	FullName string `json:"full_name"`
	ZUID     string `json:"zuid"`
}

type moduleRef struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

type sharedThrough struct {
	Module     moduleRef `json:"module"`
	ID         string    `json:"id"`
	EntityName string    `json:"entity_name"`
}

type v8Entry struct {
	SharedWith          *v8Principal  `json:"shared_with,omitempty"`
	ShareRelatedRecords bool          `json:"share_related_records"`
	SharedThrough       sharedThrough `json:"shared_through"`
	SharedTime          string        `json:"shared_time"`
	Permission          string        `json:"permission"`
	SharedBy            v8Principal   `json:"shared_by"`
	Type                string        `json:"type"`
}

type v2Entry struct {
	User                *v2User       `json:"user,omitempty"`
	ShareRelatedRecords bool          `json:"share_related_records"`
	SharedThrough       sharedThrough `json:"shared_through"`
	SharedTime          string        `json:"shared_time"`
	Permission          string        `json:"permission"`
	SharedBy            v2User        `json:"shared_by"`
	Type                string        `json:"type"`
}

func (e *Emulator) wireEntry(d dialect, s *share, through *record) any {
	st := sharedThrough{Module: moduleRef{Name: through.module, ID: moduleID(through.module)}, ID: through.id, EntityName: through.name}
	when := s.at.In(e.zone()).Format("2006-01-02T15:04:05-07:00")
	by := e.users[s.by]
	typ := "private"
	if s.Type == "public" {
		typ = "public"
	}
	if d == dialectV8 {
		en := v8Entry{
			ShareRelatedRecords: s.ShareRelated, SharedThrough: st, SharedTime: when, Permission: s.Permission,
			SharedBy: v8Principal{Name: by.FullName, ID: s.by, ZUID: zuid(by)}, Type: typ,
		}
		switch s.Type {
		case "users":
			u := e.users[s.ID]
			en.SharedWith = &v8Principal{Name: u.FullName, ID: s.ID, Type: "users", ZUID: zuid(u)}
		case "groups":
			en.SharedWith = &v8Principal{Name: e.groups[s.ID].Name, ID: s.ID, Type: "groups"}
		case "roles":
			en.SharedWith = &v8Principal{Name: e.roles[s.ID].Name, ID: s.ID, Type: "roles"}
		}
		return en
	}
	en := v2Entry{
		ShareRelatedRecords: s.ShareRelated, SharedThrough: st, SharedTime: when, Permission: s.Permission,
		SharedBy: v2User{ID: s.by, FullName: by.FullName, ZUID: zuid(by)}, Type: typ,
	}
	if s.Type == "users" {
		u := e.users[s.ID]
		en.User = &v2User{ID: s.ID, FullName: u.FullName, ZUID: zuid(u)}
	}
	return en
}

func (e *Emulator) zone() *time.Location {
	if off, err := parseOffset(e.org.TimeZone); err == nil && e.org.TimeZone != "" {
		return time.FixedZone(e.org.TimeZone, off)
	}
	return time.UTC
}

// parseOffset parses a UTC offset such as "+05:30" into seconds.
func parseOffset(s string) (int, error) {
	t, err := time.Parse("-07:00", s)
	if err != nil {
		return 0, fmt.Errorf("time_zone %q: want a UTC offset such as +05:30", s)
	}
	_, off := t.Zone()
	return off, nil
}

// zuid is the user's Zoho account ID: the seed's, else a stable number derived
// from the user ID.
func zuid(u User) string {
	if u.ZUID != "" || u.ID == "" {
		return u.ZUID
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(u.ID))
	return strconv.FormatUint(uint64(600000000+h.Sum32()%100000000), 10)
}

// moduleID is a stable module ID in Zoho's 19-digit style.
func moduleID(module string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(module))
	return strconv.FormatUint(4150868000000002000+uint64(h.Sum32()%1000), 10)
}
