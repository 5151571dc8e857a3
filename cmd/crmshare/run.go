package main

import (
	"context"
	"fmt"
	"time"
)

// runRun is `crmshare run`: the long-running service.
func runRun(ctx context.Context, sio stdio, args []string) int {
	fs := newFlagSet("run", sio)
	cfgPath := configFlag(fs, sio)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !requireFlag(fs, "config", *cfgPath) {
		return exitUsage
	}
	cfg, err := LoadConfigFile(*cfgPath, sio.getenv)
	if err != nil {
		fmt.Fprintf(sio.stderr, "crmshare run: %v\n", err)
		return exitFail
	}
	if err := serve(ctx, cfg, sio, serviceOptions{}); err != nil {
		fmt.Fprintf(sio.stderr, "crmshare run: %v\n", err)
		return exitFail
	}
	return exitOK
}

// serve starts the service, runs it until ctx is done and closes it. It is the
// whole of `crmshare run` after the config is loaded; end-to-end tests call it
// with their own options.
func serve(ctx context.Context, cfg *Config, sio stdio, opts serviceOptions) error {
	s, err := startService(ctx, cfg, sio, opts)
	if err != nil {
		return err
	}
	s.logger.InfoContext(ctx, "crmshare started",
		"nats", s.natsURL, "stream", cfg.NATS.Stream.Name, "consumer", cfg.NATS.Consumer.Durable,
		"zoho_api_version", cfg.Zoho.APIVersion, "rules", s.rules.Len(),
		"metrics", s.tel.Addr(), "concurrency", cfg.NATS.Concurrency)
	if opts.Started != nil {
		opts.Started(s)
	}
	if len(cfg.Dev.Publish) > 0 {
		if err := s.publishFiles(ctx, cfg.Dev.Publish); err != nil {
			s.logger.ErrorContext(ctx, "dev: publish example events", "error", err)
		}
	}
	runErr := s.Run(ctx)
	s.logger.InfoContext(ctx, "crmshare stopping")
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.Close(closeCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return runErr
}
