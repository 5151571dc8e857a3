package zoho

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// firstErr is the failure a caller sees: the whole-request error, else the
// first entry's error.
func firstErr(res []Result, err error) error {
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// TestErrorTable runs the client against the emulator for every row of the
// contract's error table (§3) that applies to v2, v2.1 and v8, in each dialect.
// Rows the emulator produces from its own rules use real requests; rows that
// need an org state the emulator does not model are scripted as faults, which
// still travel over HTTP and through the client's decoding.
func TestErrorTable(t *testing.T) {
	type env struct {
		c   *Client
		emu *zohoemu.Emulator
	}
	share := func(module, id string, s []Share) func(context.Context, env) error {
		return func(ctx context.Context, e env) error { return firstErr(e.c.Share(ctx, module, id, s)) }
	}
	put := func(module, id string, s []Share) func(context.Context, env) error {
		return func(ctx context.Context, e env) error { return firstErr(e.c.UpdateShares(ctx, module, id, s)) }
	}
	fault := func(f zohoemu.Fault) *zohoemu.Faults {
		if f.Count == 0 {
			f.Count = 1
		}
		return &zohoemu.Faults{Rules: []zohoemu.Fault{f}}
	}
	oneUser := users(PermissionReadOnly, user(2))
	var elevenUsers []string
	for i := 1; i <= 11; i++ {
		elevenUsers = append(elevenUsers, user(i))
	}
	var sixRoles, twentyOne []Share
	for i := 1; i <= 6; i++ {
		sixRoles = append(sixRoles, Share{Recipient: Recipient{Type: RecipientRole, ID: role(i)}, Permission: PermissionReadOnly})
	}
	for i := 1; i <= 12; i++ {
		twentyOne = append(twentyOne, users(PermissionReadOnly, user(i))...)
	}
	for i := 1; i <= 6; i++ {
		twentyOne = append(twentyOne, Share{Recipient: Recipient{Type: RecipientGroup, ID: group(i)}, Permission: PermissionReadOnly})
	}
	twentyOne = append(twentyOne, sixRoles[:3]...)

	tests := []struct {
		name     string
		dialects []string // nil: all three
		faults   *zohoemu.Faults
		call     func(context.Context, env) error
		// want, per dialect where they differ ("" key: every dialect)
		status    map[string]int
		code      map[string]string
		is        error
		retryable bool
	}{
		{name: "record id wrong", call: share("Deals", "4150868000002599999", oneUser),
			status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}},
		{name: "bad module", call: share("Nope", deal, oneUser),
			status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_MODULE"}},
		{name: "module not supported in API", faults: fault(zohoemu.Fault{Code: "INVALID_MODULE", Message: "The given module is not supported in API"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_MODULE"}},
		{name: "permission is invalid", faults: fault(zohoemu.Fault{Code: "INVALID_DATA", Message: "Permission is invalid"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}},
		{name: "already visible", call: share("Deals", deal2, users(PermissionReadOnly, user(1))),
			status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}, is: ErrAlreadyVisible},
		{name: "cannot share to a disabled user", call: share("Deals", deal, users(PermissionReadOnly, former)),
			status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}},
		{name: "cannot share to an unconfirmed user", call: share("Deals", deal, users(PermissionReadOnly, newHire)),
			status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}},
		{name: "invalid user id", call: share("Deals", deal, users(PermissionReadOnly, "4150868000001999999")),
			status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}},
		{name: "invalid group id", dialects: []string{"v8"},
			call:   share("Deals", deal, []Share{{Recipient: Recipient{Type: RecipientGroup, ID: "4150868000002099999"}, Permission: PermissionReadOnly}}),
			status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}},
		{name: "invalid role id", dialects: []string{"v8"},
			call:   share("Deals", deal, []Share{{Recipient: Recipient{Type: RecipientRole, ID: "4150868000002199999"}, Permission: PermissionReadOnly}}),
			status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}},
		{name: "cannot share the related records", faults: fault(zohoemu.Fault{Code: "INVALID_DATA", Message: "cannot share the related records"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}},
		{name: "too many entries", dialects: []string{"v8"}, call: share("Deals", deal, twentyOne),
			status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}},
		{name: "permission or type key incorrect", dialects: []string{"v2", "v2.1"},
			faults: fault(zohoemu.Fault{Code: "INVALID_DATA", Message: `Either the value for "permission" or the "type" key is incorrect.`}),
			call:   share("Deals", deal, oneUser), status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}},
		{name: "shared record cannot be re-shared", dialects: []string{"v8"},
			faults: fault(zohoemu.Fault{Code: "INVALID_DATA", Status: 403, Message: "Shared record cannot be shared to other users"}),
			call:   share("Deals", deal, oneUser), status: map[string]int{"": 403}, code: map[string]string{"": "INVALID_DATA"}},
		{name: "mandatory not found", faults: fault(zohoemu.Fault{Code: "MANDATORY_NOT_FOUND", Message: "required field not found"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 400}, code: map[string]string{"": "MANDATORY_NOT_FOUND"}},
		{name: "ambiguity during processing", faults: fault(zohoemu.Fault{Code: "AMBIGUITY_DURING_PROCESSING", Message: "For public sharing, more than one json object is given"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 400}, code: map[string]string{"": "AMBIGUITY_DURING_PROCESSING"}},
		{name: "scheduler is running", faults: &zohoemu.Faults{SchedulerWindow: zohoemu.Duration(time.Hour)},
			call: func(ctx context.Context, e env) error {
				if err := firstErr(e.c.Share(ctx, "Deals", deal, oneUser)); err != nil {
					return errors.New("first share failed: " + err.Error())
				}
				return firstErr(e.c.Share(ctx, "Deals", deal, users(PermissionReadOnly, user(3))))
			},
			status: map[string]int{"": 400, "v8": 403}, code: map[string]string{"": "CANNOT_PROCESS"}, is: ErrSchedulerRunning, retryable: true},
		{name: "scheduler is running on GET", faults: fault(zohoemu.Fault{Code: "INVALID_DATA", Message: "Scheduler is running."}),
			call:   func(ctx context.Context, e env) error { _, err := e.c.SharedWith(ctx, "Deals", deal); return err },
			status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_DATA"}, is: ErrSchedulerRunning, retryable: true},
		{name: "nothing to revoke", call: func(ctx context.Context, e env) error { return e.c.RevokeAll(ctx, "Deals", deal) },
			status: map[string]int{"": 400}, code: map[string]string{"": "BAD_REQUEST", "v8": "CANNOT_PROCESS"}, is: ErrNothingToRevoke},
		{name: "pattern not matched", call: func(ctx context.Context, e env) error {
			_, err := e.c.ListShares(ctx, "Deals", deal, ListQuery{View: "everything"})
			return err
		}, status: map[string]int{"": 400}, code: map[string]string{"": "PATTERN_NOT_MATCHED"}},
		{name: "invalid request method", faults: fault(zohoemu.Fault{Code: "INVALID_REQUEST_METHOD", Message: "The http request method type is not a valid one"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 400}, code: map[string]string{"": "INVALID_REQUEST_METHOD"}},
		{name: "authorization failed", faults: fault(zohoemu.Fault{Code: "AUTHORIZATION_FAILED", Message: "User does not have sufficient privilege to share records"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 400}, code: map[string]string{"": "AUTHORIZATION_FAILED"}},
		{name: "share limit exceeded", dialects: []string{"v2", "v2.1"}, call: share("Deals", deal, users(PermissionReadOnly, elevenUsers...)),
			status: map[string]int{"": 403}, code: map[string]string{"": "SHARE_LIMIT_EXCEEDED"}, is: ErrShareLimitExceeded},
		{name: "share limit exceeded by PUT", dialects: []string{"v2", "v2.1"}, call: put("Deals", deal, users(PermissionReadOnly, elevenUsers...)),
			status: map[string]int{"": 403}, code: map[string]string{"": "SHARE_LIMIT_EXCEEDED"}, is: ErrShareLimitExceeded},
		{name: "share limit exceeded fault", faults: fault(zohoemu.Fault{Code: "SHARE_LIMIT_EXCEEDED"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 403}, code: map[string]string{"": "SHARE_LIMIT_EXCEEDED"}, is: ErrShareLimitExceeded},
		{name: "limit exceeded per entry, users", dialects: []string{"v8"}, call: share("Deals", deal, users(PermissionReadOnly, elevenUsers...)),
			status: map[string]int{"": 207}, code: map[string]string{"": "LIMIT_EXCEEDED"}, is: ErrShareLimitExceeded},
		{name: "limit exceeded per entry, roles", dialects: []string{"v8"}, call: share("Deals", deal, sixRoles),
			status: map[string]int{"": 207}, code: map[string]string{"": "LIMIT_EXCEEDED"}, is: ErrShareLimitExceeded},
		{name: "limit exceeded 403", faults: fault(zohoemu.Fault{Code: "LIMIT_EXCEEDED", Status: 403, Message: "The record sharing limit has been reached"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 403}, code: map[string]string{"": "LIMIT_EXCEEDED"}, is: ErrShareLimitExceeded},
		{name: "feeds not enabled", faults: fault(zohoemu.Fault{Code: "NOT_ALLOWED", Status: 403, Message: "Feeds is not enabled for this org"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 403}, code: map[string]string{"": "NOT_ALLOWED"}},
		{name: "feeds notification not allowed", dialects: []string{"v8"}, faults: fault(zohoemu.Fault{Code: "NOT_ALLOWED", Status: 403, Message: "Feeds Notification is not allowed for this type"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 403}, code: map[string]string{"": "NOT_ALLOWED"}},
		{name: "record level sharing not supported", faults: fault(zohoemu.Fault{Code: "NOT_ALLOWED", Status: 403, Message: "Record Level Sharing is not supported for this module"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 403}, code: map[string]string{"": "NOT_ALLOWED"}},
		{name: "no permission", faults: fault(zohoemu.Fault{Code: "NO_PERMISSION"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 403}, code: map[string]string{"": "NO_PERMISSION"}},
		{name: "oauth scope mismatch, module outside the grant", call: share("Leads", lead, oneUser),
			status: map[string]int{"": 401}, code: map[string]string{"": "OAUTH_SCOPE_MISMATCH"}},
		{name: "oauth scope mismatch, activity module", call: share("Tasks", "4150868000004000001", oneUser),
			status: map[string]int{"": 401}, code: map[string]string{"": "OAUTH_SCOPE_MISMATCH"}},
		{name: "invalid token twice", faults: fault(zohoemu.Fault{Code: "INVALID_TOKEN", Count: 2}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 401}, code: map[string]string{"": "INVALID_TOKEN"}, is: ErrInvalidToken, retryable: true},
		{name: "authentication failure twice", faults: fault(zohoemu.Fault{Code: "AUTHENTICATION_FAILURE", Count: 2}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 401}, code: map[string]string{"": "AUTHENTICATION_FAILURE"}, is: ErrInvalidToken, retryable: true},
		{name: "invalid url pattern", faults: fault(zohoemu.Fault{Code: "INVALID_URL_PATTERN", Status: 404, Message: "Please check if the URL trying to access is a correct one"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 404}, code: map[string]string{"": "INVALID_URL_PATTERN"}},
		{name: "too many requests", faults: fault(zohoemu.Fault{Code: "TOO_MANY_REQUESTS"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 429}, code: map[string]string{"": "TOO_MANY_REQUESTS"}, is: ErrRateLimited, retryable: true},
		{name: "internal error", faults: fault(zohoemu.Fault{Code: "INTERNAL_ERROR"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 500}, code: map[string]string{"": "INTERNAL_ERROR"}, retryable: true},
		{name: "internal server error", faults: fault(zohoemu.Fault{Code: "INTERNAL_SERVER_ERROR"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 500}, code: map[string]string{"": "INTERNAL_SERVER_ERROR"}, retryable: true},
		{name: "proxy 502 without JSON", faults: fault(zohoemu.Fault{Status: 502}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 502}, code: map[string]string{"": ""}, retryable: true},
		{name: "connection dropped", faults: fault(zohoemu.Fault{Kind: "drop"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 0}, code: map[string]string{"": ""}, retryable: true},
		{name: "applied, then the reply was lost", faults: fault(zohoemu.Fault{Kind: "drop", After: true}),
			call: put("Deals", deal, oneUser), status: map[string]int{"": 0}, code: map[string]string{"": ""}, retryable: true},
		{name: "api not supported", faults: fault(zohoemu.Fault{Code: "API_NOT_SUPPORTED", Message: "the api is not supported"}),
			call: share("Deals", deal, oneUser), status: map[string]int{"": 400}, code: map[string]string{"": "API_NOT_SUPPORTED"}},
	}
	for _, tt := range tests {
		ds := tt.dialects
		if ds == nil {
			ds = dialects
		}
		for _, v := range ds {
			t.Run(v+"/"+tt.name, func(t *testing.T) {
				emu, srv := startEmu(t, zohoemu.Config{})
				if tt.faults != nil {
					emu.SetFaults(*tt.faults)
				}
				c := emuClient(t, srv.URL, v, Config{})
				err := tt.call(t.Context(), env{c: c, emu: emu})
				var ze *Error
				if !errors.As(err, &ze) {
					t.Fatalf("error = %v, want a *Error", err)
				}
				pick := func(m map[string]int) int {
					if w, ok := m[v]; ok {
						return w
					}
					return m[""]
				}
				wantCode := tt.code[""]
				if w, ok := tt.code[v]; ok {
					wantCode = w
				}
				if ze.Status != pick(tt.status) || ze.Code != wantCode {
					t.Errorf("error = %v: status %d code %q, want %d %q", err, ze.Status, ze.Code, pick(tt.status), wantCode)
				}
				if got := ze.Retryable(); got != tt.retryable {
					t.Errorf("error = %v: Retryable() = %v, want %v", err, got, tt.retryable)
				}
				var r interface{ Retryable() bool }
				if errors.As(err, &r); r.Retryable() != tt.retryable {
					t.Errorf("error chain's first Retryable() = %v, want %v", r.Retryable(), tt.retryable)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("error = %v, want errors.Is %v", err, tt.is)
				}
				for _, s := range []error{ErrAlreadyVisible, ErrShareLimitExceeded, ErrNothingToRevoke, ErrSchedulerRunning,
					ErrInvalidToken, ErrRateLimited, ErrCredentialsRejected, ErrInvalidRequest, ErrUserNotFound} {
					if s != tt.is && errors.Is(err, s) {
						t.Errorf("error = %v also matches %v", err, s)
					}
				}
				if refreshes := emu.TokenRefreshes(); ze.Code != "INVALID_TOKEN" && ze.Code != "AUTHENTICATION_FAILURE" && refreshes != 1 {
					t.Errorf("token refreshes = %d, want 1 (only INVALID_TOKEN and AUTHENTICATION_FAILURE refresh)", refreshes)
				}
			})
		}
	}
}

// TestTokenRefusedOnceIsInvisible: a 401 INVALID_TOKEN or AUTHENTICATION_FAILURE
// is fixed by one refresh and one retry; the caller never sees it.
func TestTokenRefusedOnceIsInvisible(t *testing.T) {
	for _, v := range dialects {
		for _, code := range []string{"INVALID_TOKEN", "AUTHENTICATION_FAILURE", "expired"} {
			t.Run(v+"/"+code, func(t *testing.T) {
				emu, srv := startEmu(t, zohoemu.Config{})
				c := emuClient(t, srv.URL, v, Config{})
				if err := c.CheckCredentials(t.Context()); err != nil {
					t.Fatalf("CheckCredentials: %v", err)
				}
				if code == "expired" {
					emu.ExpireTokens()
				} else {
					emu.SetFaults(zohoemu.Faults{Rules: []zohoemu.Fault{{Code: code, Count: 1}}})
				}
				res, err := c.Share(t.Context(), "Deals", deal, users(PermissionReadWrite, user(2)))
				if err := firstErr(res, err); err != nil {
					t.Fatalf("Share: %v", err)
				}
				if got := emu.TokenRefreshes(); got != 2 {
					t.Errorf("token refreshes = %d, want 2", got)
				}
				if got := emu.Shares("Deals", deal); len(got) != 1 || got[0].ID != user(2) {
					t.Errorf("emulator shares = %+v, want user(2)", got)
				}
				if got := emu.Requests().ByMethod[http.MethodPost]; got < 2 {
					t.Errorf("POST requests = %d, want the refused one and the retry", got)
				}
			})
		}
	}
}
