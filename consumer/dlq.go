package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is one message of the dead-letter stream, with the failure
// headers read out.
type DeadLetter struct {
	Sequence        uint64    // in the dead-letter stream
	Time            time.Time // when the dead-letter stream stored it
	Subject         string    // <DeadLetter.Subject>.<original subject>
	OriginalSubject string    // Crmshare-Original-Subject
	OriginalStream  string    // Crmshare-Original-Stream
	OriginalSeq     uint64    // Crmshare-Original-Sequence
	Reason          string    // Crmshare-Error
	ZohoCode        string    // Crmshare-Zoho-Code
	Rule            string    // Crmshare-Rule
	// EventID, EventType and EventSource come from decoding the body; empty
	// when it is not a valid CloudEvent (DecodeErr says why).
	EventID, EventType, EventSource string
	DecodeErr                       error
	// Header and Data are the message as stored: the original headers plus
	// the failure headers, and the original bytes.
	Header nats.Header
	Data   []byte
}

// DeadLetters reads and redrives the dead-letter stream. It is safe for
// concurrent use.
type DeadLetters struct {
	js     jetstream.JetStream
	cfg    DeadLetterConfig
	stream jetstream.Stream
}

// ErrDeadLetterNotFound is a sequence the dead-letter stream does not hold.
var ErrDeadLetterNotFound = errors.New("no dead letter with that sequence")

// OpenDeadLetters binds the dead-letter stream cfg names (defaults as in
// Config: "CRM_EVENTS_DLQ", subject prefix "crm.dlq").
func OpenDeadLetters(ctx context.Context, js jetstream.JetStream, cfg DeadLetterConfig) (*DeadLetters, error) {
	if cfg.Stream == "" {
		cfg.Stream = "CRM_EVENTS_DLQ"
	}
	if cfg.Subject == "" {
		cfg.Subject = "crm.dlq"
	}
	st, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("bind dead-letter stream %s: %w", cfg.Stream, err)
	}
	return &DeadLetters{js: js, cfg: cfg, stream: st}, nil
}

// List returns every dead letter, oldest first.
func (d *DeadLetters) List(ctx context.Context) ([]DeadLetter, error) {
	info, err := d.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream %s: %w", d.cfg.Stream, err)
	}
	var out []DeadLetter
	if info.State.Msgs == 0 {
		return out, nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		dl, err := d.Get(ctx, seq)
		if errors.Is(err, ErrDeadLetterNotFound) {
			continue // deleted by a redrive
		}
		if err != nil {
			return out, err
		}
		out = append(out, dl)
	}
	return out, nil
}

// Get returns the dead letter at seq, or an error matching
// ErrDeadLetterNotFound.
func (d *DeadLetters) Get(ctx context.Context, seq uint64) (DeadLetter, error) {
	m, err := d.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, ErrDeadLetterNotFound)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	dl := DeadLetter{
		Sequence:        m.Sequence,
		Time:            m.Time,
		Subject:         m.Subject,
		OriginalSubject: headerValue(m.Header, HeaderOriginalSubject),
		OriginalStream:  headerValue(m.Header, HeaderOriginalStream),
		Reason:          headerValue(m.Header, HeaderError),
		ZohoCode:        headerValue(m.Header, HeaderZohoCode),
		Rule:            headerValue(m.Header, HeaderRule),
		Header:          m.Header,
		Data:            m.Data,
	}
	dl.OriginalSeq, _ = strconv.ParseUint(headerValue(m.Header, HeaderOriginalSequence), 10, 64)
	if dl.OriginalSubject == "" {
		dl.OriginalSubject, _ = strings.CutPrefix(m.Subject, d.cfg.Subject+".")
	}
	if ev, err := Decode(m.Data, originalHeader(m.Header)); err == nil {
		dl.EventID, dl.EventType, dl.EventSource = ev.ID(), ev.Type(), ev.Source()
	} else {
		dl.DecodeErr = err
	}
	return dl, nil
}

// RedriveResult is what a redrive did.
type RedriveResult struct {
	DeadLetter DeadLetter
	Subject    string // where the original bytes were republished
	MsgID      string // the new Nats-Msg-Id
	Stream     string // the stream that stored it
	Sequence   uint64 // its sequence there
	Duplicate  bool   // the stream had it already (a repeated redrive)
}

// Redrive republishes the dead letter at seq to its original subject (the
// original bytes and headers, without the failure headers), waits for the
// stream to store it, then deletes it from the dead-letter stream.
//
// The CloudEvent keeps its id, so the ledger still recognises it, but the
// Nats-Msg-Id is new ("redrive-<dead-letter stream>-<seq>"): the original id
// may still be in the duplicate window, which would drop the republish. The
// id is the same for every redrive of one dead letter, so a redrive repeated
// after a crash between the publish and the delete is stored once.
func (d *DeadLetters) Redrive(ctx context.Context, seq uint64) (RedriveResult, error) {
	dl, err := d.Get(ctx, seq)
	if err != nil {
		return RedriveResult{}, err
	}
	res, msg := d.redriveMsg(dl)
	if msg.Subject == "" {
		return res, fmt.Errorf("redrive dead letter %d: no original subject", seq)
	}
	ack, err := d.js.PublishMsg(ctx, msg, jetstream.WithMsgID(res.MsgID))
	if err != nil {
		return res, fmt.Errorf("redrive dead letter %d to %s: %w", seq, msg.Subject, err)
	}
	if ack.Stream == d.cfg.Stream {
		return res, fmt.Errorf("redrive dead letter %d: %s is captured by the dead-letter stream itself", seq, msg.Subject)
	}
	res.Stream, res.Sequence, res.Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
	if err := d.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return res, fmt.Errorf("redrive dead letter %d: republished, but delete from %s: %w", seq, d.cfg.Stream, err)
	}
	return res, nil
}

// RedrivePlan returns what Redrive would publish, without publishing.
func (d *DeadLetters) RedrivePlan(ctx context.Context, seq uint64) (RedriveResult, error) {
	dl, err := d.Get(ctx, seq)
	if err != nil {
		return RedriveResult{}, err
	}
	res, _ := d.redriveMsg(dl)
	return res, nil
}

func (d *DeadLetters) redriveMsg(dl DeadLetter) (RedriveResult, *nats.Msg) {
	msg := &nats.Msg{Subject: dl.OriginalSubject, Header: originalHeader(dl.Header), Data: dl.Data}
	return RedriveResult{
		DeadLetter: dl,
		Subject:    dl.OriginalSubject,
		MsgID:      fmt.Sprintf("redrive-%s-%d", d.cfg.Stream, dl.Sequence),
	}, msg
}

// Purge deletes every dead letter and returns how many there were.
func (d *DeadLetters) Purge(ctx context.Context) (uint64, error) {
	info, err := d.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead-letter stream %s: %w", d.cfg.Stream, err)
	}
	if err := d.stream.Purge(ctx); err != nil {
		return 0, fmt.Errorf("purge %s: %w", d.cfg.Stream, err)
	}
	return info.State.Msgs, nil
}

// originalHeader is a dead letter's header without what the dead-lettering
// added: the Crmshare-* failure headers and the Nats-* ones.
func originalHeader(h nats.Header) nats.Header {
	out := make(nats.Header, len(h))
	for k, vs := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "crmshare-") || strings.HasPrefix(lk, "nats-") {
			continue
		}
		out[k] = slices.Clone(vs)
	}
	return out
}

// deadLetterMsg builds the dead letter of a message the way the consumer
// does (see Consumer.deadLetter): the original headers without Nats-*, the
// failure headers, the original bytes, and a Nats-Msg-Id derived from the
// original stream sequence.
func (c DeadLetterConfig) deadLetterMsg(subject string, hdr nats.Header, data []byte, stream string, seq, delivered uint64,
	class string, cause error, now time.Time) (*nats.Msg, string) {
	h := make(nats.Header, len(hdr)+9)
	for k, vs := range hdr {
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			if strings.EqualFold(k, jetstream.MsgIDHeader) && len(vs) > 0 {
				h.Set(HeaderOriginalMsgID, vs[0])
			}
			continue
		}
		h[k] = slices.Clone(vs)
	}
	h.Set(HeaderError, headerSafe(classWords[class]+": "+cause.Error()))
	// The code names what the remote service refused; an undecodable event
	// never reached it, and the error words say so.
	if code := errorCode(cause); code != "" && class != classDecode {
		h.Set(HeaderZohoCode, headerSafe(code))
	}
	if rule := errorRule(cause); rule != "" {
		h.Set(HeaderRule, headerSafe(rule))
	}
	h.Set(HeaderOriginalSubject, subject)
	h.Set(HeaderOriginalStream, stream)
	h.Set(HeaderOriginalSequence, strconv.FormatUint(seq, 10))
	h.Set(HeaderDeliveries, strconv.FormatUint(delivered, 10))
	h.Set(HeaderFailedAt, now.UTC().Format(time.RFC3339))
	return &nats.Msg{Subject: c.Subject + "." + subject, Header: h, Data: data},
		fmt.Sprintf("dlq-%s-%d", stream, seq)
}
