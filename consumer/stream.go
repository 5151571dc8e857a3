package consumer

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Setup creates or updates the stream, the dead-letter stream, the ledger
// bucket and the durable consumer, or with BindOnly binds to existing ones
// and fails if one is missing. Call it once before Run.
func (c *Consumer) Setup(ctx context.Context) error {
	js := c.cfg.JS
	var kv jetstream.KeyValue
	if c.cfg.BindOnly {
		st, err := js.Stream(ctx, c.cfg.Stream.Name)
		if err != nil {
			return fmt.Errorf("bind stream %s: %w", c.cfg.Stream.Name, err)
		}
		if r := st.CachedInfo().Config.Retention; r != jetstream.LimitsPolicy {
			return fmt.Errorf("bind stream %s: retention is %v; replay needs limits retention", c.cfg.Stream.Name, r)
		}
		if _, err := js.Stream(ctx, c.cfg.DeadLetter.Stream); err != nil {
			return fmt.Errorf("bind dead-letter stream %s: %w", c.cfg.DeadLetter.Stream, err)
		}
		if kv, err = js.KeyValue(ctx, c.cfg.Ledger.Bucket); err != nil {
			return fmt.Errorf("bind ledger bucket %s: %w", c.cfg.Ledger.Bucket, err)
		}
	} else {
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:       c.cfg.Stream.Name,
			Subjects:   c.cfg.Stream.Subjects,
			Retention:  jetstream.LimitsPolicy, // never WorkQueue: recovery is by replay
			Storage:    jetstream.FileStorage,
			MaxAge:     c.cfg.Stream.MaxAge,
			Duplicates: c.cfg.Stream.DuplicateWindow,
			Replicas:   c.cfg.Stream.Replicas,
		}); err != nil {
			return fmt.Errorf("create stream %s: %w", c.cfg.Stream.Name, err)
		}
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        c.cfg.DeadLetter.Stream,
			Description: "crmshare dead letters of " + c.cfg.Stream.Name,
			Subjects:    []string{c.cfg.DeadLetter.Subject + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Duplicates:  c.cfg.Stream.DuplicateWindow,
			Replicas:    c.cfg.Stream.Replicas,
		}); err != nil {
			return fmt.Errorf("create dead-letter stream %s: %w", c.cfg.DeadLetter.Stream, err)
		}
		var err error
		if kv, err = js.CreateOrUpdateKeyValue(ctx, c.LedgerBucketConfig()); err != nil {
			return fmt.Errorf("create ledger bucket %s: %w", c.cfg.Ledger.Bucket, err)
		}
	}
	cons, err := c.bind(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.cons, c.ledger = cons, newLedger(js, kv, c.cfg.Ledger.Bucket)
	c.ledger.log = c.log
	c.bound = true
	c.mu.Unlock()
	return nil
}

// bind creates or updates the durable consumer (or, with BindOnly, looks it
// up). Run calls it again when the server reports the consumer gone.
func (c *Consumer) bind(ctx context.Context) (jetstream.Consumer, error) {
	if c.cfg.BindOnly {
		cons, err := c.cfg.JS.Consumer(ctx, c.cfg.Stream.Name, c.cfg.Consumer.Durable)
		if err != nil {
			return nil, fmt.Errorf("bind consumer %s on %s: %w", c.cfg.Consumer.Durable, c.cfg.Stream.Name, err)
		}
		return cons, nil
	}
	cons, err := c.cfg.JS.CreateOrUpdateConsumer(ctx, c.cfg.Stream.Name, jetstream.ConsumerConfig{
		Durable:        c.cfg.Consumer.Durable,
		Description:    "crmshare share handler",
		FilterSubjects: c.cfg.Consumer.FilterSubjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.cfg.Consumer.AckWait,
		MaxDeliver:     c.cfg.Consumer.MaxDeliver,
		BackOff:        c.cfg.serverBackOff(),
		MaxAckPending:  c.cfg.Consumer.MaxAckPending,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", c.cfg.Consumer.Durable, c.cfg.Stream.Name, err)
	}
	return cons, nil
}

// LedgerBucketConfig is the configuration Setup gives the ledger bucket when
// it creates it (Stream.Create).
func (c *Consumer) LedgerBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      c.cfg.Ledger.Bucket,
		Description: "crmshare applied events (CloudEvent source+id)",
		TTL:         c.cfg.Ledger.TTL,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Stream.Replicas,
	}
}
