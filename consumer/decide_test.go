package consumer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testError scripts the classification interfaces a handler error may carry.
type testError struct {
	permanent bool          // Retryable() == false
	suspend   bool          // Suspend() == true
	throttled bool          // Throttled() == true
	delay     time.Duration // RetryDelay()
	code      string        // ErrorCode()
	rule      string        // Rule()
}

func (e *testError) Error() string             { return fmt.Sprintf("scripted failure %s", e.code) }
func (e *testError) Retryable() bool           { return !e.permanent }
func (e *testError) Suspend() bool             { return e.suspend }
func (e *testError) Throttled() bool           { return e.throttled }
func (e *testError) RetryDelay() time.Duration { return e.delay }
func (e *testError) ErrorCode() string         { return e.code }
func (e *testError) Rule() string              { return e.rule }
func wrapped(err error) error                  { return fmt.Errorf("handle: %w", err) }
func permanentOnly() error                     { return &onlyRetryable{} }

type onlyRetryable struct{}

func (*onlyRetryable) Error() string   { return "refused" }
func (*onlyRetryable) Retryable() bool { return false }

func TestDecide(t *testing.T) {
	pol := policy{
		backoff:      []time.Duration{time.Second, 10 * time.Second, time.Minute},
		maxDeliver:   5,
		suspendDelay: 3 * time.Second,
	}
	tests := []struct {
		name      string
		err       error
		delivered uint64
		pol       policy
		want      reply
	}{
		{name: "success acks", err: nil, delivered: 1, want: reply{kind: decisionAck}},
		{name: "success on last delivery acks", err: nil, delivered: 5, want: reply{kind: decisionAck}},
		{name: "shutdown cancel naks now", err: wrapped(context.Canceled), delivered: 2, want: reply{kind: decisionNak}},
		{name: "plain error is retryable, first step", err: errors.New("boom"), delivered: 1,
			want: reply{kind: decisionNak, delay: time.Second}},
		{name: "deadline exceeded is retryable", err: wrapped(context.DeadlineExceeded), delivered: 2,
			want: reply{kind: decisionNak, delay: 10 * time.Second}},
		{name: "retryable second step", err: wrapped(&testError{}), delivered: 2,
			want: reply{kind: decisionNak, delay: 10 * time.Second}},
		{name: "last step repeats", err: wrapped(&testError{}), delivered: 4,
			want: reply{kind: decisionNak, delay: time.Minute}},
		{name: "throttled takes the next step", err: wrapped(&testError{throttled: true}), delivered: 1,
			want: reply{kind: decisionNak, delay: 10 * time.Second}},
		{name: "throttled at the last step stays there", err: wrapped(&testError{throttled: true}), delivered: 3,
			want: reply{kind: decisionNak, delay: time.Minute}},
		{name: "server asked for a longer wait", err: wrapped(&testError{throttled: true, delay: 90 * time.Second}), delivered: 1,
			want: reply{kind: decisionNak, delay: 90 * time.Second}},
		{name: "shorter server wait keeps the backoff", err: wrapped(&testError{delay: 100 * time.Millisecond}), delivered: 2,
			want: reply{kind: decisionNak, delay: 10 * time.Second}},
		{name: "permanent dead-letters", err: wrapped(&testError{permanent: true, code: "INVALID_DATA"}), delivered: 1,
			want: reply{kind: decisionDeadLetter, class: classPermanent}},
		{name: "permanent with only Retryable", err: permanentOnly(), delivered: 1,
			want: reply{kind: decisionDeadLetter, class: classPermanent}},
		{name: "decode error dead-letters on first delivery", err: &DecodeError{Err: ErrNotCloudEvent}, delivered: 1,
			want: reply{kind: decisionDeadLetter, class: classDecode}},
		{name: "retryable on the last delivery dead-letters", err: wrapped(&testError{}), delivered: 5,
			want: reply{kind: decisionDeadLetter, class: classMaxDeliver}},
		{name: "retryable beyond the last delivery dead-letters", err: errors.New("boom"), delivered: 7,
			want: reply{kind: decisionDeadLetter, class: classMaxDeliver}},
		{name: "unlimited deliveries never dead-letter a retryable error", err: errors.New("boom"), delivered: 1000,
			pol:  policy{backoff: pol.backoff, maxDeliver: -1},
			want: reply{kind: decisionNak, delay: time.Minute}},
		{name: "suspend naks and pauses, though not retryable", err: wrapped(&testError{suspend: true, permanent: true}), delivered: 1,
			want: reply{kind: decisionNak, delay: 3 * time.Second, suspend: true}},
		{name: "suspend on the last delivery keeps the message", err: wrapped(&testError{suspend: true, permanent: true}), delivered: 5,
			want: reply{kind: decisionDeadLetter, class: classSuspended, suspend: true}},
		{name: "Suspend false is not a suspend", err: wrapped(&testError{suspend: false, permanent: true}), delivered: 1,
			want: reply{kind: decisionDeadLetter, class: classPermanent}},
		{name: "empty backoff naks without delay", err: errors.New("boom"), delivered: 1,
			pol:  policy{maxDeliver: 3},
			want: reply{kind: decisionNak}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.pol
			if p.maxDeliver == 0 {
				p = pol
			}
			got := decide(tt.err, tt.delivered, p)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(reply{})); diff != "" {
				t.Errorf("decide(%v, %d) mismatch (-want +got):\n%s", tt.err, tt.delivered, diff)
			}
		})
	}
}

func TestErrorDetails(t *testing.T) {
	err := wrapped(&testError{code: "LIMIT_EXCEEDED", rule: "share-deal"})
	if got, want := errorCode(err), "LIMIT_EXCEEDED"; got != want {
		t.Errorf("errorCode = %q, want %q", got, want)
	}
	if got, want := errorRule(err), "share-deal"; got != want {
		t.Errorf("errorRule = %q, want %q", got, want)
	}
	if got := errorCode(errors.New("plain")); got != "" {
		t.Errorf("errorCode(plain) = %q, want empty", got)
	}
}
