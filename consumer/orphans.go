package consumer

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxOrphanScan bounds how many stream sequences fenceOrphans reads.
const maxOrphanScan = 4096

// fenceOrphans fences the records of events that were delivered but never
// settled by anyone this process knows of: a replica killed while it held
// them (kill -9, OOM, node loss). The server redelivers those only after
// their ack wait, and by then this process would already have applied later
// events of the same records, so the stale event would win. Run calls it
// before it fetches anything.
//
// The unsettled events lie between the consumer's ack floor and its last
// delivered sequence. Each one in that range that decodes, has ordering keys
// and is not in the ledger fences its keys, exactly as a nak does: until its
// redelivery settles here, or until the longest redelivery delay has passed
// (another replica may have it). Events acked out of order are in the ledger
// and cost nothing; a dead-lettered one only delays its records until its
// fence expires. The ledger is read for all of them at once; if that fails,
// all are fenced. Other errors are logged and end the scan: the fences are
// a safeguard for ordering, not a precondition for consuming.
func (c *Consumer) fenceOrphans(ctx context.Context, sched *scheduler) {
	if c.keyer == nil {
		return
	}
	c.mu.Lock()
	cons, led := c.cons, c.ledger
	c.mu.Unlock()
	if cons == nil || led == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	info, err := cons.Info(sctx)
	if err != nil {
		c.log.Warn("read consumer info to fence unsettled events", "error", err)
		return
	}
	if info.NumAckPending == 0 || info.Delivered.Stream <= info.AckFloor.Stream {
		return
	}
	from, to := info.AckFloor.Stream+1, info.Delivered.Stream
	if to-from >= maxOrphanScan {
		c.log.Warn("too many unsettled sequences to fence them all", "from", from, "to", to, "scanned", maxOrphanScan)
		to = from + maxOrphanScan - 1
	}
	st, err := c.cfg.JS.Stream(sctx, c.cfg.Stream.Name)
	if err != nil {
		c.log.Warn("open stream to fence unsettled events", "error", err)
		return
	}
	// The server may redeliver it up to AckWait plus the longest nak step
	// after its last delivery.
	d := c.cfg.Consumer.AckWait + c.pol.step(uint64(len(c.pol.backoff))) + fenceMargin
	filters := info.Config.FilterSubjects
	if info.Config.FilterSubject != "" {
		filters = append(filters, info.Config.FilterSubject)
	}
	// Read the unsettled events, then ask the ledger about all of them at
	// once.
	type orphan struct {
		seq  uint64
		keys []string
	}
	var (
		orphans []orphan
		evKeys  []string
	)
	for seq := from; seq <= to; seq++ {
		m, err := st.GetMsg(sctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			c.log.Warn("read unsettled event to fence its records", "stream_seq", seq, "error", err)
			break
		}
		if len(filters) > 0 && !subjectMatchesAny(m.Subject, filters) {
			continue
		}
		ev, err := Decode(m.Data, m.Header)
		if err != nil {
			continue // dead-lettered on its redelivery, whatever runs before it
		}
		keys := uniqueKeys(c.keyer.OrderingKeys(ev))
		if len(keys) == 0 {
			continue
		}
		orphans = append(orphans, orphan{seq: seq, keys: keys})
		evKeys = append(evKeys, EventKey(ev))
	}
	if len(orphans) == 0 {
		return
	}
	applied, err := led.lookup(sctx, evKeys)
	if err != nil {
		// Fence them all: a fence on an applied event only delays its
		// records, a missing one could let a stale event win.
		c.log.Warn("read ledger to fence unsettled events; fencing them all", "events", len(orphans), "error", err)
	}
	fenced := 0
	for i, o := range orphans {
		if err == nil && applied[i] {
			continue
		}
		sched.fenceSeq(o.seq, o.keys, d)
		fenced++
	}
	if fenced > 0 {
		c.log.Info("fenced the records of unsettled events until they are redelivered",
			"events", fenced, "from", from, "to", to, "for", d)
	}
}

// fenceSeq fences keys on behalf of the event at stream sequence seq, which
// this scheduler does not hold: later events of those keys wait until seq
// settles here for good or d has passed.
func (s *scheduler) fenceSeq(seq uint64, keys []string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setFence(&job{seq: seq, keys: keys}, d, s.now())
}

// subjectMatchesAny reports whether subject matches one of the NATS subject
// filters ('*' matches one token, '>' the rest).
func subjectMatchesAny(subject string, filters []string) bool {
	for _, f := range filters {
		if subjectMatches(subject, f) {
			return true
		}
	}
	return false
}

func subjectMatches(subject, filter string) bool {
	st, ft := strings.Split(subject, "."), strings.Split(filter, ".")
	for i, f := range ft {
		switch {
		case f == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case f != "*" && f != st[i]:
			return false
		}
	}
	return len(st) == len(ft)
}
