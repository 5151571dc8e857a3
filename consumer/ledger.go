package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ledger remembers applied events in a key-value bucket keyed by EventKey, so
// a redelivery, a replay or the same event republished under another
// Nats-Msg-Id is not handed to the Handler twice. The bucket's TTL bounds it.
type ledger struct {
	kv jetstream.KeyValue
}

// ledgerEntry is the value stored per applied event, for people inspecting
// the bucket.
type ledgerEntry struct {
	ID        string    `json:"id"`
	Source    string    `json:"source"`
	Type      string    `json:"type"`
	Stream    string    `json:"stream"`
	Sequence  uint64    `json:"seq"`
	AppliedAt time.Time `json:"applied_at"`
}

// applied reports whether key was recorded. A read failure is an error, which
// the ack decision treats as retryable.
func (l ledger) applied(ctx context.Context, key string) (bool, error) {
	_, err := l.kv.Get(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return false, nil
	}
	return false, fmt.Errorf("read ledger: %w", err)
}

// record stores key as applied.
func (l ledger) record(ctx context.Context, key string, e ledgerEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode ledger entry: %w", err)
	}
	if _, err := l.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("write ledger: %w", err)
	}
	return nil
}
