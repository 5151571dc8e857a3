package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// writeCounter counts the writes made on a connection.
type writeCounter struct {
	net.Conn
	n *atomic.Int64
}

func (c writeCounter) Write(b []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(b)
}

// TestInMemoryBodyOneWrite: under otelhttp, a Zoho write goes out in one
// write with its headers when inMemoryBody sits under it, and in two without
// (the control), and the server gets the whole body either way.
func TestInMemoryBodyOneWrite(t *testing.T) {
	got := make(chan string, 2)
	srv := &http.Server{Handler: http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		got <- b.String()
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	const body = `{"share":[{"user":{"id":"1"},"permission":"read_only"}]}`
	for _, tc := range []struct {
		name   string
		wrap   bool
		writes int64
	}{{"otelhttp alone", false, 2}, {"inMemoryBody under otelhttp", true, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				return writeCounter{c, &n}, err
			}}
			t.Cleanup(tr.CloseIdleConnections)
			var rt http.RoundTripper = tr
			if tc.wrap {
				rt = inMemoryBody{tr}
			}
			hc := &http.Client{Transport: otelhttp.NewTransport(rt)}
			req, err := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/crm/v2/Deals/1/actions/share", bytes.NewReader([]byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if b := <-got; b != body {
				t.Errorf("server got body %q, want %q", b, body)
			}
			if w := n.Load(); w != tc.writes {
				t.Errorf("%d writes for one request, want %d", w, tc.writes)
			}
		})
	}
}
