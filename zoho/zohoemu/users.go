package zohoemu

import (
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
)

// userFilters are the documented values of the Users API's type parameter.
var userFilters = map[string]func(u User, caller string) bool{
	"AllUsers":             func(u User, _ string) bool { return u.Status != "deleted" },
	"ActiveUsers":          func(u User, _ string) bool { return u.Status == "active" },
	"DeactiveUsers":        func(u User, _ string) bool { return u.Status == "disabled" },
	"ConfirmedUsers":       func(u User, _ string) bool { return u.Status != "deleted" && u.Confirm },
	"NotConfirmedUsers":    func(u User, _ string) bool { return u.Status != "deleted" && !u.Confirm },
	"DeletedUsers":         func(u User, _ string) bool { return u.Status == "deleted" },
	"ActiveConfirmedUsers": func(u User, _ string) bool { return u.Status == "active" && u.Confirm },
	"AdminUsers":           func(u User, _ string) bool { return u.Status != "deleted" && u.Profile == "Administrator" },
	"CurrentUser":          func(u User, caller string) bool { return u.ID == caller },
}

const maxPerPage = 200

type wireUser struct {
	ID        string     `json:"id"`
	Email     string     `json:"email"`
	FullName  string     `json:"full_name"`
	FirstName string     `json:"first_name"`
	LastName  string     `json:"last_name"`
	ZUID      string     `json:"zuid"`
	Status    string     `json:"status"`
	Confirm   bool       `json:"confirm"`
	Role      *moduleRef `json:"role,omitempty"`
	Profile   moduleRef  `json:"profile"`
}

type pageInfo struct {
	PerPage     int  `json:"per_page"`
	Count       int  `json:"count"`
	Page        int  `json:"page"`
	MoreRecords bool `json:"more_records"`
}

// serveUsers implements GET /crm/{v}/users?type=&page=&per_page=. It runs under
// the emulator's lock.
func (e *Emulator) serveUsers(r *http.Request, tok *accessToken) *reply {
	if r.Method != http.MethodGet {
		return errorReply(http.StatusBadRequest, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one", nil)
	}
	if !tok.hasScope("ZohoCRM.users.READ", "ZohoCRM.users.ALL") {
		return errorReply(http.StatusUnauthorized, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL", nil)
	}
	q := r.URL.Query()
	typ := q.Get("type")
	if typ == "" {
		typ = "AllUsers"
	}
	filter, ok := userFilters[typ]
	if !ok {
		return errorReply(http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"api_name": "type"})
	}
	intParam := func(name string, def, max int) (int, *reply) {
		s := q.Get(name)
		if s == "" {
			return def, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > max {
			return 0, errorReply(http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"api_name": name})
		}
		return n, nil
	}
	page, rp := intParam("page", 1, 1<<30)
	if rp != nil {
		return rp
	}
	perPage, rp := intParam("per_page", maxPerPage, maxPerPage)
	if rp != nil {
		return rp
	}
	var match []User
	for _, id := range e.order {
		if u := e.users[id]; filter(u, tok.userID) {
			match = append(match, u)
		}
	}
	start := (page - 1) * perPage
	if start >= len(match) {
		return &reply{status: http.StatusNoContent, code: "NO_CONTENT"}
	}
	end := min(start+perPage, len(match))
	out := make([]wireUser, 0, end-start)
	for _, u := range match[start:end] {
		first, last, _ := strings.Cut(u.FullName, " ")
		if last == "" {
			first, last = "", first
		}
		profile := u.Profile
		if profile == "" {
			profile = "Standard"
		}
		wu := wireUser{
			ID: u.ID, Email: u.Email, FullName: u.FullName, FirstName: first, LastName: last,
			ZUID: zuid(u), Status: u.Status, Confirm: u.Confirm,
			Profile: moduleRef{Name: profile, ID: stableID(profile)},
		}
		if rl, ok := e.roles[u.Role]; ok {
			wu.Role = &moduleRef{Name: rl.Name, ID: rl.ID}
		}
		out = append(out, wu)
	}
	return jsonReply(http.StatusOK, map[string]any{
		"users": out,
		"info":  pageInfo{PerPage: perPage, Count: len(out), Page: page, MoreRecords: end < len(match)},
	}, "SUCCESS")
}

func stableID(name string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return strconv.FormatUint(4150868000000026000+uint64(h.Sum32()%1000), 10)
}
