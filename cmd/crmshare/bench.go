package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/crmshare/crmshare/consumer"
)

// benchConfigYAML is the built-in bench config: the service's defaults with
// an embedded NATS server on a free port, no listeners, and a wider window of
// unacknowledged events. The bench fills
// in the Zoho URLs and credentials of its own emulator.
const benchConfigYAML = `
nats:
  url: embedded
  embedded_addr: 127.0.0.1:0
  consumer:
    # Events of one record coalesce only while they wait together, and the
    # server delivers at most this many unacknowledged: a burst larger than
    # the window is cut into more runs.
    max_ack_pending: 256
zoho:
  api_version: v8
  api_url: http://127.0.0.1:1
  accounts_url: http://127.0.0.1:1
  client_id: 1000.BENCH
  client_secret: replaced-by-the-bench
  refresh_token: replaced-by-the-bench
telemetry:
  traces: none
  metrics_addr: ""
  log_format: text
  log_level: warn
`

// benchOptions are the flags of `crmshare bench`.
type benchOptions struct {
	events          int
	mix             string
	latency         time.Duration
	zohoConcurrency int
	configPath      string
	baseline        bool
	json            bool
	timeout         time.Duration
	cpuProfile      string
	infraCPUProfile string
	memProfile      string
	serveInfra      bool // run the infrastructure process instead (hidden)
}

// benchResult is the outcome of one bench run; --json prints it as is.
type benchResult struct {
	Mix                 string         `json:"mix"`
	Events              int            `json:"events"`
	ZohoLatencyMS       float64        `json:"zoho_latency_ms"`
	ZohoConcurrency     int            `json:"zoho_concurrency"`
	ClientConcurrency   int            `json:"client_max_concurrency"`
	ConsumerConcurrency int            `json:"consumer_concurrency"`
	Seconds             float64        `json:"seconds"`
	EventsPerSec        float64        `json:"events_per_sec"`
	Intents             int64          `json:"intents"`
	IntentsPerSec       float64        `json:"intents_per_sec"`
	ZohoCalls           map[string]int `json:"zoho_calls"`
	ShareCalls          int            `json:"share_calls"`
	WriteCalls          int            `json:"write_calls"`
	RecordsWritten      int            `json:"records_written"`
	MaxWritesPerRecord  int            `json:"max_writes_per_record"`
	CallsPerIntent      float64        `json:"calls_per_intent"`
	CallsPerEvent       float64        `json:"calls_per_event"`
	ZohoUtilisation     float64        `json:"zoho_utilisation"`
	HTTP429             int            `json:"http_429"`
	P50MS               float64        `json:"p50_ms"`
	P99MS               float64        `json:"p99_ms"`
	CPUSecPer1kEvents   float64        `json:"cpu_sec_per_1k_events"`
	// InfraCPUSecPer1kEvents is the CPU the NATS server and the emulator
	// (the bench's child process) spent per 1,000 events during the drain;
	// absent where the bench cannot read another process's CPU time.
	InfraCPUSecPer1kEvents float64 `json:"infra_cpu_sec_per_1k_events,omitempty"`
	PeakHeapBytes          uint64  `json:"peak_heap_bytes"`
	PeakLiveHeapBytes      uint64  `json:"peak_live_heap_bytes"`
	// PeakServiceHeapBytes is the part of the heap the service allocated
	// (not the bench's own bookkeeping), estimated from the heap profile;
	// the NATS server and the emulator run in another process.
	PeakServiceHeapBytes uint64         `json:"peak_service_heap_bytes"`
	HeapBeforeBytes      uint64         `json:"heap_before_bytes"`
	Decisions            map[string]int `json:"decisions"`
	Classes              []benchClass   `json:"classes"`

	BaselineEventsPerSec float64 `json:"baseline_events_per_sec,omitempty"`
	RatioToBaseline      float64 `json:"ratio_to_baseline,omitempty"`
	// The CPU per 1,000 events of the baseline loop, in this process and in
	// the infrastructure process.
	BaselineCPUSecPer1kEvents      float64 `json:"baseline_cpu_sec_per_1k_events,omitempty"`
	BaselineInfraCPUSecPer1kEvents float64 `json:"baseline_infra_cpu_sec_per_1k_events,omitempty"`
	// The same for the bare loop with a ledger: one entry stored per event
	// before its ack, as the service does to stay replay-safe.
	LedgerBaselineEventsPerSec           float64 `json:"ledger_baseline_events_per_sec,omitempty"`
	RatioToLedgerBaseline                float64 `json:"ratio_to_ledger_baseline,omitempty"`
	LedgerBaselineCPUSecPer1kEvents      float64 `json:"ledger_baseline_cpu_sec_per_1k_events,omitempty"`
	LedgerBaselineInfraCPUSecPer1kEvents float64 `json:"ledger_baseline_infra_cpu_sec_per_1k_events,omitempty"`
}

// benchClass is the cost of one kind of event of a mix.
type benchClass struct {
	Class         string  `json:"class"`
	Events        int     `json:"events"`
	ShareCalls    int     `json:"share_calls"`
	CallsPerEvent float64 `json:"calls_per_event"`
}

// runBench is `crmshare bench`.
func runBench(ctx context.Context, sio stdio, args []string) int {
	fs := newFlagSet("bench", sio)
	var o benchOptions
	fs.IntVar(&o.events, "events", 1000, "how many events to publish before the consumer starts")
	fs.StringVar(&o.mix, "mix", mixGrants, "event mix: grants (first-time, one per record), replay (already applied: half in the ledger, half only in Zoho), mixed (grants, revokes, sets), hot (10 grants per record)")
	fs.DurationVar(&o.latency, "latency", 0, "latency the emulator adds to every CRM call, e.g. 100ms")
	fs.IntVar(&o.zohoConcurrency, "zoho-concurrency", 10, "the emulator's limit on concurrent CRM calls (429 beyond it)")
	fs.StringVar(&o.configPath, "config", "", "config `file` for the nats and zoho tuning (default: built-in bench config); its rules, URLs and credentials are replaced")
	fs.BoolVar(&o.baseline, "baseline", false, "also run a minimal fetch-POST-ack loop on the same data and report the ratio")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	fs.StringVar(&o.infraCPUProfile, "infra-cpuprofile", "", "write a CPU profile of the NATS server and emulator process during the drain to `file` (and of the baselines to file.baseline and file.ledger-baseline)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the drain (not the baseline) to `file`")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile taken when the backlog is drained to `file`")
	fs.BoolVar(&o.serveInfra, "serve-infra", false, "internal: serve the bench's NATS server and emulator until stdin closes")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var probs []string
	if o.events < 1 {
		probs = append(probs, "--events must be at least 1")
	}
	if o.latency < 0 {
		probs = append(probs, "--latency must not be negative")
	}
	if o.zohoConcurrency < 1 {
		probs = append(probs, "--zoho-concurrency must be at least 1")
	}
	if !slices.Contains([]string{mixGrants, mixReplay, mixMixed, mixHot}, o.mix) {
		probs = append(probs, fmt.Sprintf("--mix %q: want grants, replay, mixed or hot", o.mix))
	}
	if len(probs) > 0 {
		fmt.Fprintf(sio.stderr, "crmshare bench: %s\n", strings.Join(probs, "; "))
		return exitUsage
	}
	if o.serveInfra {
		if err := serveBenchInfra(ctx, sio, o); err != nil {
			fmt.Fprintf(sio.stderr, "crmshare bench --serve-infra: %v\n", err)
			return exitFail
		}
		return exitOK
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := bench(ctx, sio, o)
	if err != nil {
		fmt.Fprintf(sio.stderr, "crmshare bench: %v\n", err)
		return exitFail
	}
	if o.json {
		enc := json.NewEncoder(sio.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(sio.stderr, "crmshare bench: %v\n", err)
			return exitFail
		}
		return exitOK
	}
	printBench(sio.stdout, res)
	return exitOK
}

// bench runs one measurement: it starts the infrastructure process (NATS
// server and emulator) and the service in this process, fills
// the stream with the mix, runs the consumer until the backlog is drained,
// and reads what happened.
func bench(ctx context.Context, sio stdio, o benchOptions) (*benchResult, error) {
	noEnv := func(string) string { return "" }
	var (
		cfg *Config
		err error
	)
	if o.configPath != "" {
		cfg, err = LoadConfigFile(o.configPath, sio.getenv)
	} else {
		cfg, err = LoadConfig([]byte(benchConfigYAML), noEnv)
	}
	if err != nil {
		return nil, err
	}
	rules, err := LoadConfig([]byte(benchConfigYAML+"rules:"+benchRules), noEnv)
	if err != nil {
		return nil, fmt.Errorf("bench rules: %w", err)
	}
	cfg.Rules = rules.Rules

	if o.memProfile != "" {
		// Sample the heap profile finely enough to attribute a few MiB.
		runtime.MemProfileRate = 16 << 10
	}
	plan := newBenchPlan(o.mix, o.events)
	// The NATS server and the emulator run in a child process, as they
	// would in production, so this process's heap and CPU are the
	// service's and the bench driver's.
	infra, err := startBenchInfra(ctx, sio, o)
	if err != nil {
		return nil, err
	}
	defer infra.close()
	creds := benchCreds{clientID: infra.info.ClientID, secret: infra.info.ClientSecret, refresh: infra.info.RefreshToken}
	emuURL := infra.info.ZohoURL

	cfg.NATS.URL, cfg.NATS.EmbeddedAddr, cfg.NATS.StoreDir = infra.info.NATSURL, "", ""
	cfg.NATS.Stream.Create = true
	cfg.NATS.CredsFile, cfg.NATS.TLS = "", TLSConfig{}
	cfg.Zoho.Emulator = false
	cfg.Zoho.APIURL, cfg.Zoho.AccountsURL = emuURL, emuURL
	cfg.Zoho.ClientID, cfg.Zoho.ClientSecret, cfg.Zoho.RefreshToken = creds.clientID, Secret(creds.secret), Secret(creds.refresh)
	cfg.Telemetry.MetricsAddr = ""
	cfg.Ingress.Addr = ""
	cfg.Dev.Publish = nil

	reader := benchReader()
	s, err := startService(ctx, cfg, sio, serviceOptions{
		LogWriter:   sio.stderr,
		NoListeners: true,
		Readers:     []sdkmetric.Reader{reader},
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = s.Close(cctx)
	}()

	lastSeq, err := fillStream(ctx, s, cfg, plan)
	if err != nil {
		return nil, err
	}
	if err := infra.resetCalls(ctx); err != nil {
		return nil, err
	}

	res := &benchResult{
		Mix: o.mix, Events: o.events, ZohoLatencyMS: float64(o.latency) / float64(time.Millisecond),
		ZohoConcurrency: o.zohoConcurrency, ClientConcurrency: cfg.Zoho.MaxConcurrency,
		ConsumerConcurrency: cfg.NATS.Concurrency,
	}
	runtime.GC()
	res.HeapBeforeBytes = liveHeap()
	heap := sampleHeap(10 * time.Millisecond)
	cpu0 := cpuTime()
	infraCPU0, infraOK := procCPU(infra.cmd.Process.Pid)
	start := time.Now()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
	}
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- s.Run(runCtx) }()
	drainErr := waitDrained(ctx, s.js, cfg, lastSeq, ran)
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	infraCPU, infraOK2 := procCPU(infra.cmd.Process.Pid)
	res.PeakHeapBytes, res.PeakLiveHeapBytes, res.PeakServiceHeapBytes = heap.stop()
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if o.memProfile != "" && drainErr == nil {
		if err := writeHeapProfile(o.memProfile); err != nil {
			drainErr = err
		}
	}
	stopRun()
	if err := <-ran; err != nil && drainErr == nil {
		drainErr = err
	}
	if drainErr != nil {
		return nil, drainErr
	}

	calls, err := infra.calls(ctx)
	if err != nil {
		return nil, err
	}
	sm, err := collectMetrics(ctx, reader)
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	res.fill(elapsed, cpu, calls, sm, plan, o)
	if infraOK && infraOK2 {
		res.InfraCPUSecPer1kEvents = per1k(infraCPU-infraCPU0, o.events)
	}

	if o.baseline {
		// The bare loop, then the same loop with a ledger write per event;
		// each starts with every grant first-time again.
		scratch := s.consumer.LedgerBucketConfig()
		scratch.Bucket, scratch.Description = baselineLedgerBucket, "crmshare bench: the baseline loop's ledger"
		for _, ledger := range []jetstream.KeyValueConfig{{}, scratch} {
			if err := infra.resetEmulator(ctx); err != nil {
				return nil, err
			}
			bcpu0 := cpuTime()
			binfra0, binfraOK := procCPU(infra.cmd.Process.Pid)
			took, err := runBaseline(ctx, baselineConfig{
				js: s.js, stream: cfg.NATS.Stream.Name, apiURL: emuURL, version: cfg.Zoho.APIVersion,
				creds: creds, concurrency: cfg.Zoho.MaxConcurrency, events: o.events,
				ledger: ledger,
			})
			if err != nil {
				return nil, err
			}
			eps := float64(o.events) / took.Seconds()
			bcpu := per1k(cpuTime()-bcpu0, o.events)
			var binfra float64
			if bi, ok := procCPU(infra.cmd.Process.Pid); ok && binfraOK {
				binfra = per1k(bi-binfra0, o.events)
			}
			if ledger.Bucket == "" {
				res.BaselineEventsPerSec, res.RatioToBaseline = eps, res.EventsPerSec/eps
				res.BaselineCPUSecPer1kEvents, res.BaselineInfraCPUSecPer1kEvents = bcpu, binfra
			} else {
				res.LedgerBaselineEventsPerSec, res.RatioToLedgerBaseline = eps, res.EventsPerSec/eps
				res.LedgerBaselineCPUSecPer1kEvents, res.LedgerBaselineInfraCPUSecPer1kEvents = bcpu, binfra
			}
		}
	}
	return res, nil
}

// per1k is d in seconds per 1,000 of n events.
func per1k(d time.Duration, n int) float64 { return d.Seconds() * 1000 / float64(n) }

func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

// fillStream publishes the plan's events (and records the replay mix's
// applied ones in the ledger) and returns the last stream sequence.
func fillStream(ctx context.Context, s *service, cfg *Config, plan *benchPlan) (uint64, error) {
	js, err := jetstream.New(s.nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		return 0, fmt.Errorf("bench publisher: %w", err)
	}
	var kv jetstream.KeyValue
	now := time.Now().UTC()
	// A subject the stream captures: its first subject, wildcards filled in.
	tokens := strings.Split(cfg.NATS.Stream.Subjects[0], ".")
	for i, t := range tokens {
		if t == "*" || t == ">" {
			tokens[i] = "bench"
		}
	}
	subject := strings.Join(tokens, ".")
	var last uint64
	for i := range plan.n {
		e := plan.event(i)
		ev, err := e.cloudEvent(i, now)
		if err != nil {
			return 0, err
		}
		if e.inLedger {
			if kv == nil {
				if kv, err = js.KeyValue(ctx, cfg.NATS.Ledger.Bucket); err != nil {
					return 0, fmt.Errorf("ledger bucket: %w", err)
				}
			}
			entry := fmt.Appendf(nil, `{"id":%q,"source":%q,"type":%q}`, ev.ID(), ev.Source(), ev.Type())
			if _, err := kv.Put(ctx, consumer.EventKey(ev), entry); err != nil {
				return 0, fmt.Errorf("ledger: %w", err)
			}
		}
		msg, err := consumer.Encode(subject, ev, consumer.ModeBinary)
		if err != nil {
			return 0, err
		}
		id := consumer.EventKey(ev)
		if e.republishKey != "" {
			id = e.republishKey
		}
		if _, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(id)); err != nil {
			return 0, fmt.Errorf("publish: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, fmt.Errorf("publish: %w", ctx.Err())
	}
	st, err := s.js.Stream(ctx, cfg.NATS.Stream.Name)
	if err != nil {
		return 0, fmt.Errorf("stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	last = info.State.LastSeq
	if info.State.Msgs < uint64(plan.n) {
		return 0, fmt.Errorf("stream holds %d messages, published %d", info.State.Msgs, plan.n)
	}
	return last, nil
}

// waitDrained polls the durable consumer until every message up to last is
// settled, Run failed, or ctx ends.
func waitDrained(ctx context.Context, js jetstream.JetStream, cfg *Config, last uint64, ran <-chan error) error {
	// Each look costs the service's process and the server a consumer info
	// request; looking every 10ms through a 100s drain would be a tenth of
	// the service's own CPU. Looking every 1/200 of the time so far (10ms
	// to 250ms) keeps the drain's end within half a percent.
	start := time.Now()
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	var cons jetstream.Consumer
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("backlog not drained: %w", ctx.Err())
		case err := <-ran:
			if err == nil {
				err = errors.New("consumer stopped")
			}
			return fmt.Errorf("backlog not drained: %w", err)
		case <-t.C:
			t.Reset(min(max(time.Since(start)/200, 10*time.Millisecond), 250*time.Millisecond))
		}
		if cons == nil {
			c, err := js.Consumer(ctx, cfg.NATS.Stream.Name, cfg.NATS.Consumer.Durable)
			if err != nil {
				continue
			}
			cons = c
		}
		info, err := cons.Info(ctx)
		if err != nil {
			continue
		}
		if info.AckFloor.Stream >= last && info.NumAckPending == 0 {
			return nil
		}
	}
}

// fill computes the result's figures.
func (r *benchResult) fill(elapsed, cpu time.Duration, calls benchCalls, sm serviceMetrics, plan *benchPlan, o benchOptions) {
	secs := elapsed.Seconds()
	r.Seconds = secs
	r.EventsPerSec = float64(r.Events) / secs
	r.Intents = sm.intents
	r.IntentsPerSec = float64(sm.intents) / secs
	r.ZohoCalls = map[string]int{"GET": 0, "POST": 0, "PUT": 0, "DELETE": 0, "users": calls.Users, "token": calls.Token}
	for m, n := range calls.ByMethod {
		r.ZohoCalls[m] = n
	}
	r.ShareCalls = calls.share()
	r.WriteCalls = calls.Writes
	r.RecordsWritten = calls.Records
	r.MaxWritesPerRecord = calls.MaxWrites
	if sm.intents > 0 {
		r.CallsPerIntent = float64(r.ShareCalls) / float64(sm.intents)
	}
	r.CallsPerEvent = float64(r.ShareCalls) / float64(r.Events)
	if o.latency > 0 {
		ceiling := float64(o.zohoConcurrency) / o.latency.Seconds()
		r.ZohoUtilisation = float64(r.ShareCalls+calls.Users) / secs / ceiling
	}
	r.HTTP429 = calls.HTTP429
	r.P50MS = 1000 * quantile(sm.durations, 0.50)
	r.P99MS = 1000 * quantile(sm.durations, 0.99)
	r.CPUSecPer1kEvents = cpu.Seconds() * 1000 / float64(r.Events)
	r.Decisions = make(map[string]int)
	for d, n := range sm.decisions {
		r.Decisions[d] = int(n)
	}
	// Per class: events counted from the plan; calls by module for the
	// replay mix (it keeps its classes in different modules), else by the
	// intents' action as the service counts them (crmshare.share_calls).
	order, count := plan.classes()
	for _, c := range order {
		bc := benchClass{Class: c, Events: count[c], ShareCalls: r.ShareCalls}
		switch c {
		case "replay_in_ledger":
			bc.ShareCalls = calls.ByModule["Deals"]
		case "replay_in_zoho":
			bc.ShareCalls = calls.ByModule["Accounts"]
		default:
			if a, ok := benchClassAction[c]; ok && len(order) > 1 {
				bc.ShareCalls = int(sm.callsByAct[a])
			} else if len(order) > 1 {
				bc.ShareCalls = -1 // not told apart
			}
		}
		if bc.ShareCalls >= 0 {
			bc.CallsPerEvent = float64(bc.ShareCalls) / float64(bc.Events)
		}
		r.Classes = append(r.Classes, bc)
	}
}

// printBench writes the result as a table.
func printBench(w io.Writer, r *benchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("mix", "%s, %d events", r.Mix, r.Events)
	row("zoho", "latency %.0fms, emulator limit %d, client limit %d", r.ZohoLatencyMS, r.ZohoConcurrency, r.ClientConcurrency)
	row("consumer concurrency", "%d", r.ConsumerConcurrency)
	row("drained in", "%.2fs", r.Seconds)
	row("events/s", "%.1f", r.EventsPerSec)
	row("intents/s", "%.1f (%d intents)", r.IntentsPerSec, r.Intents)
	row("zoho calls", "GET %d, POST %d, PUT %d, DELETE %d, users %d, token %d",
		r.ZohoCalls["GET"], r.ZohoCalls["POST"], r.ZohoCalls["PUT"], r.ZohoCalls["DELETE"], r.ZohoCalls["users"], r.ZohoCalls["token"])
	row("share calls per intent", "%.3f (per event %.3f)", r.CallsPerIntent, r.CallsPerEvent)
	row("write calls", "%d over %d records, at most %d on one", r.WriteCalls, r.RecordsWritten, r.MaxWritesPerRecord)
	if r.ZohoLatencyMS > 0 {
		row("zoho utilisation", "%.3f", r.ZohoUtilisation)
	} else {
		row("zoho utilisation", "n/a (no latency)")
	}
	row("429s", "%d", r.HTTP429)
	row("latency p50 / p99", "%.1fms / %.1fms (stream timestamp to settlement)", r.P50MS, r.P99MS)
	if r.InfraCPUSecPer1kEvents > 0 {
		row("cpu per 1,000 events", "%.3fs (NATS server and emulator: %.3fs more)", r.CPUSecPer1kEvents, r.InfraCPUSecPer1kEvents)
	} else {
		row("cpu per 1,000 events", "%.3fs", r.CPUSecPer1kEvents)
	}
	row("peak heap", "%.1f MiB in use, %.1f MiB live (%.1f MiB live before); service's own %.1f MiB",
		float64(r.PeakHeapBytes)/(1<<20), float64(r.PeakLiveHeapBytes)/(1<<20), float64(r.HeapBeforeBytes)/(1<<20),
		float64(r.PeakServiceHeapBytes)/(1<<20))
	var ds []string
	for d, n := range r.Decisions {
		ds = append(ds, fmt.Sprintf("%s %d", d, n))
	}
	slices.Sort(ds)
	row("decisions", "%s", strings.Join(ds, ", "))
	for _, c := range r.Classes {
		if c.ShareCalls >= 0 {
			row("  "+c.Class, "%d events, %d share calls (%.3f per event)", c.Events, c.ShareCalls, c.CallsPerEvent)
		} else {
			row("  "+c.Class, "%d events", c.Events)
		}
	}
	if r.BaselineEventsPerSec > 0 {
		row("baseline events/s", "%.1f", r.BaselineEventsPerSec)
		row("ratio to baseline", "%.2f", r.RatioToBaseline)
		if r.BaselineInfraCPUSecPer1kEvents > 0 {
			row("baseline cpu per 1,000 events", "%.3fs (NATS server and emulator: %.3fs more)", r.BaselineCPUSecPer1kEvents, r.BaselineInfraCPUSecPer1kEvents)
		}
	}
	if r.LedgerBaselineEventsPerSec > 0 {
		row("baseline with ledger events/s", "%.1f (%.2f of the baseline)", r.LedgerBaselineEventsPerSec, r.LedgerBaselineEventsPerSec/r.BaselineEventsPerSec)
		row("ratio to baseline with ledger", "%.2f", r.RatioToLedgerBaseline)
		if r.LedgerBaselineInfraCPUSecPer1kEvents > 0 {
			row("baseline with ledger cpu per 1,000 events", "%.3fs (NATS server and emulator: %.3fs more)", r.LedgerBaselineCPUSecPer1kEvents, r.LedgerBaselineInfraCPUSecPer1kEvents)
		}
	}
	tw.Flush()
}
