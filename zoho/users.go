package zoho

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	usersPerPage = 200  // the most Zoho returns per page
	maxUserPages = 1000 // 200,000 users: a guard against a reply that never ends
)

// Users lists every active, confirmed user, reading all pages of
// type=ActiveConfirmedUsers. Those are the only valid share recipients.
//
// GET /crm/{version}/users?type=ActiveConfirmedUsers&page=…&per_page=200
// https://www.zoho.com/crm/developer/docs/api/v8/get-users.html
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var all []User
	for page := 1; page <= maxUserPages; page++ {
		q := url.Values{}
		q.Set("type", "ActiveConfirmedUsers")
		q.Set("page", strconv.Itoa(page))
		q.Set("per_page", strconv.Itoa(usersPerPage))
		resp, err := c.do(ctx, apiRequest{method: http.MethodGet, path: "users", query: q})
		if err != nil {
			return nil, fmt.Errorf("list users page %d: %w", page, err)
		}
		if resp.status/100 != 2 || resp.env.errorCode() != "" || resp.env.nonJSON {
			return nil, fmt.Errorf("list users page %d: %w", page, apiError(resp))
		}
		for _, u := range resp.env.Users {
			if u := u.user(); u.Active() && u.ID != "" {
				all = append(all, u)
			}
		}
		if resp.status == http.StatusNoContent || len(resp.env.Users) == 0 ||
			resp.env.Info == nil || !bool(resp.env.Info.MoreRecords) {
			return all, nil
		}
	}
	return nil, fmt.Errorf("list users: more than %d pages", maxUserPages)
}

// UserByEmail finds the active, confirmed user with this email, ignoring case.
// It answers from a cache of Users; a miss refreshes the cache only when the last
// refresh is at least Config.UsersCacheTTL old, so a stream of unknown emails
// costs one Users call per TTL. No such user is an error matching
// ErrUserNotFound, which is permanent (Retryable false).
func (c *Client) UserByEmail(ctx context.Context, email string) (User, error) {
	key := strings.ToLower(strings.TrimSpace(email))
	if key == "" {
		return User{}, invalidRequest("empty email")
	}
	u, err := c.users.lookup(ctx, c, func(s *userSnapshot) (User, bool) {
		u, ok := s.byEmail[key]
		return u, ok
	})
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", email, err)
	}
	return u, nil
}

// UserByID finds the user with this ID through the same cache as UserByEmail. A
// user that is not active and confirmed is ErrUserNotFound.
func (c *Client) UserByID(ctx context.Context, id string) (User, error) {
	if id == "" {
		return User{}, invalidRequest("empty user id")
	}
	u, err := c.users.lookup(ctx, c, func(s *userSnapshot) (User, bool) {
		u, ok := s.byID[id]
		return u, ok
	})
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// userSnapshot is one complete user list, indexed; never modified once built.
type userSnapshot struct {
	byEmail  map[string]User
	byID     map[string]User
	loadedAt time.Time
}

// userCache holds the latest snapshot and makes concurrent refreshes share one
// Users call.
type userCache struct {
	ttl time.Duration

	mu   sync.Mutex
	snap *userSnapshot
	call *usersCall
}

type usersCall struct {
	done chan struct{}
	err  error
}

// lookup answers from the snapshot when it is fresh; otherwise, and on a miss
// once the snapshot is at least ttl old, it refreshes first. A failed refresh
// still answers a hit from the old snapshot.
func (uc *userCache) lookup(ctx context.Context, c *Client, find func(*userSnapshot) (User, bool)) (User, error) {
	for {
		uc.mu.Lock()
		snap := uc.snap
		fresh := snap != nil && c.now().Sub(snap.loadedAt) < uc.ttl
		if snap != nil {
			if u, ok := find(snap); ok && fresh {
				uc.mu.Unlock()
				return u, nil
			} else if !ok && fresh {
				uc.mu.Unlock()
				return User{}, &permanentError{err: ErrUserNotFound}
			}
		}
		call := uc.call
		leader := call == nil
		if leader {
			call = &usersCall{done: make(chan struct{})}
			uc.call = call
		}
		uc.mu.Unlock()

		if leader {
			users, err := c.Users(ctx)
			uc.mu.Lock()
			if err == nil {
				uc.snap = newUserSnapshot(users, c.now())
			}
			call.err = err
			uc.call = nil
			close(call.done)
			uc.mu.Unlock()
		} else {
			select {
			case <-call.done:
			case <-ctx.Done():
				return User{}, &Error{Message: "wait for user list: " + ctx.Err().Error(), Err: ctx.Err()}
			}
		}
		if call.err != nil {
			if isContextErr(call.err) && ctx.Err() == nil && !leader {
				continue // the leader gave up; try again
			}
			if snap != nil {
				if u, ok := find(snap); ok {
					return u, nil // stale but a hit; the next lookup retries the refresh
				}
			}
			return User{}, call.err
		}
		uc.mu.Lock()
		snap = uc.snap
		uc.mu.Unlock()
		if u, ok := find(snap); ok {
			return u, nil
		}
		return User{}, &permanentError{err: ErrUserNotFound}
	}
}

func newUserSnapshot(users []User, now time.Time) *userSnapshot {
	s := &userSnapshot{
		byEmail:  make(map[string]User, len(users)),
		byID:     make(map[string]User, len(users)),
		loadedAt: now,
	}
	for _, u := range users {
		s.byID[u.ID] = u
		if u.Email != "" {
			s.byEmail[strings.ToLower(u.Email)] = u
		}
	}
	return s
}
