package main

// End-to-end checks that the nats keys of the config reference reach the
// server: stream, consumer, ledger, dead letters, store_dir, creds and TLS.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crmshare/crmshare/consumer"
	"github.com/crmshare/crmshare/zoho/zohoemu"
)

// TestServiceNATSSettings runs the service with every stream, consumer,
// ledger and dead-letter key set away from its default and checks what the
// server holds, then that filter_subjects keeps other subjects away.
func TestServiceNATSSettings(t *testing.T) {
	w := newAccWorld(t, nil)
	cfg := w.config(t)
	n := &cfg.NATS
	n.Stream = StreamConfig{Name: "EVENTS_X", Subjects: []string{"x.events.>"}, Create: true, MaxAge: 48 * time.Hour, DuplicateWindow: time.Minute, Replicas: 1}
	n.Consumer = ConsumerConfig{
		Durable: "sharer", FilterSubjects: []string{"x.events.deal.>"}, AckWait: 20 * time.Second,
		MaxDeliver: 4, Backoff: []time.Duration{time.Second, 3 * time.Second}, MaxAckPending: 32,
	}
	n.Concurrency = 8
	n.Ledger = LedgerConfig{Bucket: "APPLIED_X", TTL: 6 * time.Hour}
	n.DeadLetter = DeadLetterConfig{Stream: "DEAD_X", Subject: "x.dead"}
	cfg.Ingress.SubjectPrefix = "x.events"
	startAcc(t, cfg, serviceOptions{})
	ctx := t.Context()

	st, err := w.js.Stream(ctx, "EVENTS_X")
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	sc := st.CachedInfo().Config
	type streamGot struct {
		Subjects   []string
		MaxAge     time.Duration
		Duplicates time.Duration
		Replicas   int
		Retention  jetstream.RetentionPolicy
	}
	if diff := cmp.Diff(streamGot{sc.Subjects, sc.MaxAge, sc.Duplicates, sc.Replicas, sc.Retention},
		streamGot{[]string{"x.events.>"}, 48 * time.Hour, time.Minute, 1, jetstream.LimitsPolicy}); diff != "" {
		t.Errorf("stream config (-got +want):\n%s", diff)
	}
	cons, err := w.js.Consumer(ctx, "EVENTS_X", "sharer")
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	cc := cons.CachedInfo().Config
	type consumerGot struct {
		Filter        []string
		AckWait       time.Duration
		MaxDeliver    int
		BackOff       []time.Duration
		MaxAckPending int
	}
	// The server redelivers after an ack timeout with AckWait plus each nak
	// step, so a live replica always gets at least AckWait; with a BackOff
	// the server reports its first step as the AckWait.
	if diff := cmp.Diff(consumerGot{cc.FilterSubjects, cc.AckWait, cc.MaxDeliver, cc.BackOff, cc.MaxAckPending},
		consumerGot{[]string{"x.events.deal.>"}, 21 * time.Second, 4, []time.Duration{21 * time.Second, 23 * time.Second}, 32}); diff != "" {
		t.Errorf("consumer config (-got +want):\n%s", diff)
	}
	kv, err := w.js.KeyValue(ctx, "APPLIED_X")
	if err != nil {
		t.Fatalf("ledger bucket: %v", err)
	}
	kvs, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kvs.TTL() != 6*time.Hour {
		t.Errorf("ledger TTL = %v, want 6h", kvs.TTL())
	}
	dl, err := w.js.Stream(ctx, "DEAD_X")
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	if got := dl.CachedInfo().Config.Subjects; !slices.Equal(got, []string{"x.dead.>"}) {
		t.Errorf("dead-letter subjects = %v, want [x.dead.>]", got)
	}

	// An account event is outside the filter: it stays in the stream and is
	// never handled; the deal event after it is.
	team := exampleEvent(t, "account.team.changed.json")
	if _, err := consumer.Publish(ctx, w.js, "x.events."+team.Type(), team, consumer.ModeStructured); err != nil {
		t.Fatal(err)
	}
	deal := exampleEvent(t, "deal.assigned.json")
	ack, err := consumer.Publish(ctx, w.js, "x.events."+deal.Type(), deal, consumer.ModeStructured)
	if err != nil {
		t.Fatal(err)
	}
	w.waitSettled(t, "EVENTS_X", "sharer", ack.Sequence)
	w.waitShares(t, "Deals", demoDeal, []zohoemu.Entry{userShare(userKen, "read_only", false), userShare(userMaria, "read_write", true)})
	if got := w.emu.Shares("Accounts", demoAccount); got != nil {
		t.Errorf("an event outside filter_subjects was applied: %v", got)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 1 || info.NumPending != 0 {
		t.Errorf("consumer delivered %d, pending %d; want 1 delivered (the deal), 0 pending", info.Delivered.Consumer, info.NumPending)
	}
	// The applied event is in the ledger bucket under its key.
	if _, err := kv.Get(ctx, consumer.EventKey(deal)); err != nil {
		t.Errorf("ledger entry of the applied event: %v", err)
	}
}

// TestServiceBindOnly: with stream.create false the service fails clearly
// when the operator has not made the stream, and binds to it when they have.
func TestServiceBindOnly(t *testing.T) {
	w := newAccWorld(t, nil)
	cfg := w.config(t)
	cfg.NATS.Stream.Create = false

	sio := stdio{stdin: strings.NewReader(""), stdout: &accLog{}, stderr: &accLog{}, getenv: func(string) string { return "" }}
	err := serve(t.Context(), cfg, sio, serviceOptions{})
	if !errors.Is(err, jetstream.ErrStreamNotFound) || !strings.Contains(err.Error(), "CRM_EVENTS") {
		t.Fatalf("serve without the stream = %v, want a stream-not-found error naming CRM_EVENTS", err)
	}
	if names := streamNames(t, w.js); len(names) != 0 {
		t.Errorf("serve with create: false made streams %v", names)
	}

	// What an operator applies from deploy/nats.
	ctx := t.Context()
	mustDo := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err = w.js.CreateStream(ctx, jetstream.StreamConfig{Name: "CRM_EVENTS", Subjects: []string{"crm.events.>"}, Duplicates: 2 * time.Minute})
	mustDo("stream", err)
	_, err = w.js.CreateStream(ctx, jetstream.StreamConfig{Name: "CRM_EVENTS_DLQ", Subjects: []string{"crm.dlq.>"}})
	mustDo("dead-letter stream", err)
	_, err = w.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "CRMSHARE_LEDGER"})
	mustDo("ledger", err)
	err = serve(t.Context(), cfg, sio, serviceOptions{})
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("serve without the consumer = %v, want consumer not found", err)
	}
	_, err = w.js.CreateConsumer(ctx, "CRM_EVENTS", jetstream.ConsumerConfig{Durable: "crmshare", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 64})
	mustDo("consumer", err)

	startAcc(t, cfg, serviceOptions{})
	ack := w.publish(t, exampleEvent(t, "deal.closed.json"), consumer.ModeStructured)
	w.waitSettled(t, "CRM_EVENTS", "crmshare", ack.Sequence)
	if got := w.emu.Requests().ByMethod["DELETE"]; got != 1 {
		t.Errorf("DELETE calls = %d, want 1", got)
	}
	if diff := cmp.Diff(streamNames(t, w.js), []string{"CRM_EVENTS", "CRM_EVENTS_DLQ", "KV_CRMSHARE_LEDGER"}); diff != "" {
		t.Errorf("streams (-got +want):\n%s", diff)
	}
}

func streamNames(t testing.TB, js jetstream.JetStream) []string {
	t.Helper()
	l := js.StreamNames(t.Context())
	var names []string
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// TestServiceEmbeddedStoreDir: the embedded server keeps its store in
// store_dir, so a restart keeps the stream, the consumer's progress and the
// duplicate window.
func TestServiceEmbeddedStoreDir(t *testing.T) {
	w := newAccWorld(t, nil) // its emulator; the service runs its own NATS
	cfg := w.config(t)
	cfg.NATS.URL = "embedded"
	cfg.NATS.EmbeddedAddr = "127.0.0.1:0"
	cfg.NATS.StoreDir = t.TempDir()
	cfg.Dev.Publish = []string{exampleEvents + "/deal.assigned.json"}

	first := startAcc(t, cfg, serviceOptions{})
	w.waitShares(t, "Deals", demoDeal, []zohoemu.Entry{userShare(userKen, "read_only", false), userShare(userMaria, "read_write", true)})
	accEventually(t, accWaitLimit, func() (bool, string) {
		n := len(first.log.find("event settled", map[string]string{"decision": "ack"}))
		return n == 1, fmt.Sprintf("%d events acked", n)
	})
	if err := first.stop(); err != nil {
		t.Fatalf("first run: %v", err)
	}
	writes := w.emu.Requests().Writes

	second := startAcc(t, cfg, serviceOptions{})
	accEventually(t, accWaitLimit, func() (bool, string) {
		n := len(second.log.find("dev: published example event", nil))
		return n == 1, "example event not published again yet"
	})
	pub := second.log.find("dev: published example event", nil)[0]
	if pub["duplicate"] != true || fmt.Sprint(pub["stream_seq"]) != "1" {
		t.Errorf("republished example: duplicate %v, stream_seq %v; want the stored message 1", pub["duplicate"], pub["stream_seq"])
	}
	natsURL, _ := second.log.find("crmshare started", nil)[0]["nats"].(string)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(t.Context(), "CRM_EVENTS", "crmshare")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ci.AckFloor.Stream != 1 || ci.NumPending != 0 {
		t.Errorf("after restart: ack floor %d, pending %d; want 1 and 0", ci.AckFloor.Stream, ci.NumPending)
	}
	if got := w.emu.Requests().Writes; got != writes {
		t.Errorf("share writes after restart = %d, want %d", got, writes)
	}
}

// TestServiceNATSConnectOptions: creds_file and tls reach nats.Connect. A
// TLS server is reached with the configured CA; missing files fail clearly.
func TestServiceNATSConnectOptions(t *testing.T) {
	dir := t.TempDir()
	caFile, serverTLS := selfSignedTLS(t, dir)
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		TLS: true, TLSConfig: serverTLS, TLSTimeout: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("tls nats not ready")
	}
	w := newAccWorld(t, nil) // for its emulator

	tests := []struct {
		name    string
		mutate  func(*NATSConfig)
		wantErr string // a fragment of serve's error; "" means it starts
	}{
		{"tls with the server's ca", func(n *NATSConfig) { n.TLS.CAFile = caFile }, ""},
		{"missing ca file", func(n *NATSConfig) { n.TLS.CAFile = filepath.Join(dir, "nope.pem") }, "nats tls ca"},
		{"missing client certificate", func(n *NATSConfig) {
			n.TLS = TLSConfig{CAFile: caFile, CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "k.pem")}
		}, "nats tls client certificate"},
		{"missing creds file", func(n *NATSConfig) { n.CredsFile = filepath.Join(dir, "nope.creds") }, "nope.creds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := w.config(t)
			cfg.NATS.URL = srv.ClientURL()
			tt.mutate(&cfg.NATS)
			if tt.wantErr == "" {
				// It starts only once its stream and consumer are set up on
				// the TLS server, the one server it knows.
				startAcc(t, cfg, serviceOptions{})
				return
			}
			sio := stdio{stdin: strings.NewReader(""), stdout: &accLog{}, stderr: &accLog{}, getenv: func(string) string { return "" }}
			err := serve(t.Context(), cfg, sio, serviceOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("serve = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// selfSignedTLS writes a self-signed certificate for 127.0.0.1 to dir and
// returns its path (the CA a client trusts) and the server's TLS config.
func selfSignedTLS(t testing.TB, dir string) (string, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "crmshare test nats"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
	}
}
