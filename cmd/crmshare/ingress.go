package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/crmshare/crmshare/consumer"
)

// startIngress serves the HTTP CloudEvents ingress on ingress.addr. It starts
// after the stream is set up, so a 202 always means stored in that stream.
func (s *service) startIngress(ctx context.Context) error {
	in := s.cfg.Ingress
	h, err := consumer.NewIngress(consumer.IngressConfig{
		JS:             s.js,
		Stream:         s.cfg.NATS.Stream.Name,
		SubjectPrefix:  in.SubjectPrefix,
		BearerToken:    string(in.BearerToken),
		HMACSecret:     string(in.HMACSecret),
		MaxBodyBytes:   in.MaxBodyBytes,
		Logger:         s.logger.With("component", "ingress"),
		TracerProvider: s.tel.TracerProvider(),
	})
	if err != nil {
		return fmt.Errorf("ingress: %w", err)
	}
	ln, err := net.Listen("tcp", in.Addr)
	if err != nil {
		return fmt.Errorf("ingress listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	s.ingressAddr = ln.Addr().String()
	s.closers = append(s.closers, func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	})
	auth := "none (loopback only, please)"
	switch {
	case in.BearerToken != "" && in.HMACSecret != "":
		auth = "bearer token or hmac signature"
	case in.BearerToken != "":
		auth = "bearer token"
	case in.HMACSecret != "":
		auth = "hmac signature"
	}
	s.logger.InfoContext(ctx, "http ingress started", "addr", s.ingressAddr, "subject_prefix", in.SubjectPrefix, "auth", auth)
	return nil
}
