package main

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// callCounter wraps the emulator and counts the calls it answers: share
// calls by method, users and token calls, 429s, and share calls per module
// (the replay mix puts its two kinds of events in different modules).
type callCounter struct {
	next http.Handler

	mu       sync.Mutex
	byMethod map[string]int
	byModule map[string]int // share calls
	writes   map[string]int // share writes by "Module/RecordID"
	users    int
	token    int
	http429  int
}

func newCallCounter(next http.Handler) *callCounter {
	c := &callCounter{next: next}
	c.reset()
	return c
}

func (c *callCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byMethod = make(map[string]int)
	c.byModule = make(map[string]int)
	c.writes = make(map[string]int)
	c.users, c.token, c.http429 = 0, 0, 0
}

// statusWriter remembers the status of a reply.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (c *callCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	c.next.ServeHTTP(sw, r)
	p := r.URL.Path
	c.mu.Lock()
	defer c.mu.Unlock()
	if sw.status == http.StatusTooManyRequests {
		c.http429++
	}
	switch {
	case strings.HasSuffix(p, "/actions/share"):
		c.byMethod[r.Method]++
		// /crm/{version}/{module}/{record_id}/actions/share
		if parts := strings.Split(strings.Trim(p, "/"), "/"); len(parts) == 6 {
			c.byModule[parts[2]]++
			if r.Method != http.MethodGet {
				c.writes[parts[2]+"/"+parts[3]]++
			}
		}
	case strings.HasPrefix(p, "/oauth/"):
		c.token++
	case strings.HasPrefix(p, "/crm/"):
		c.users++
	}
}

// benchCalls is what the counter saw.
type benchCalls struct {
	ByMethod  map[string]int
	ByModule  map[string]int
	Users     int
	Token     int
	HTTP429   int
	MaxWrites int // most share writes to one record
	Records   int // records written to
	Writes    int
}

func (c *callCounter) snapshot() benchCalls {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := benchCalls{ByMethod: make(map[string]int), ByModule: make(map[string]int),
		Users: c.users, Token: c.token, HTTP429: c.http429, Records: len(c.writes)}
	for k, v := range c.byMethod {
		out.ByMethod[k] = v
	}
	for k, v := range c.byModule {
		out.ByModule[k] = v
	}
	for _, n := range c.writes {
		out.MaxWrites = max(out.MaxWrites, n)
		out.Writes += n
	}
	return out
}

// share is the number of share calls.
func (b benchCalls) share() int {
	n := 0
	for _, v := range b.ByMethod {
		n += v
	}
	return n
}

// heapSampler samples the heap while a run drains.
type heapSampler struct {
	// stop ends the sampling and returns the peaks: heap objects in use
	// (garbage included), live heap as of the latest GC, and the in-use heap
	// the service itself allocated.
	stop func() (peakInUse, peakLive, peakService uint64)
}

// sampleHeap samples the heap every interval, and the service's own part of
// it every 20 intervals, until stop is called.
func sampleHeap(interval time.Duration) heapSampler {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	var peakInUse, peakLive, peakService uint64
	attr := newHeapAttribution()
	read := func(service bool) {
		metrics.Read(samples)
		if samples[0].Value.Kind() == metrics.KindUint64 {
			peakInUse = max(peakInUse, samples[0].Value.Uint64())
		}
		if samples[1].Value.Kind() == metrics.KindUint64 {
			peakLive = max(peakLive, samples[1].Value.Uint64())
		}
		if service {
			peakService = max(peakService, attr.serviceBytes())
		}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for i := 0; ; i++ {
			read(i%20 == 0)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return heapSampler{stop: func() (uint64, uint64, uint64) {
		close(done)
		<-finished
		read(true)
		return peakInUse, peakLive, peakService
	}}
}

// outsideService names the code whose allocations are not the service's:
// the bench's own bookkeeping (the NATS server and the emulator run in the
// infrastructure process, as they are other processes in production; they
// stay listed for a profile of an infrastructure process).
var outsideService = []string{
	"github.com/nats-io/nats-server/",
	"github.com/crmshare/crmshare/zoho/zohoemu.",
	"net/http.(*conn).", // the emulator's HTTP server
	"main.(*benchPlan)", "main.(*callCounter)", "main.fillStream", "main.sampleHeap",
	"main.runBaseline", "main.baselineOne", "main.(*baselineLedger)", "main.newBaselineLedger",
	"main.collectMetrics", "main.(*heapAttribution)",
}

// heapAttribution sums the heap profile's in-use bytes whose allocation
// stacks lie wholly in the service.
type heapAttribution struct {
	outside map[uintptr]bool // by PC
	recs    []runtime.MemProfileRecord
}

func newHeapAttribution() *heapAttribution {
	return &heapAttribution{outside: make(map[uintptr]bool)}
}

func (h *heapAttribution) isOutside(pc uintptr) bool {
	o, ok := h.outside[pc]
	if !ok {
		if f := runtime.FuncForPC(pc - 1); f != nil {
			name := f.Name()
			for _, p := range outsideService {
				if strings.HasPrefix(name, p) {
					o = true
					break
				}
			}
		}
		h.outside[pc] = o
	}
	return o
}

// serviceBytes estimates the in-use heap allocated by the service, as of
// the latest GC, scaling the sampled profile as pprof does.
func (h *heapAttribution) serviceBytes() uint64 {
	n, ok := runtime.MemProfile(h.recs, false)
	for !ok {
		h.recs = make([]runtime.MemProfileRecord, n+n/4+16)
		n, ok = runtime.MemProfile(h.recs, false)
	}
	rate := float64(runtime.MemProfileRate)
	var total float64
next:
	for _, r := range h.recs[:n] {
		bytes, objs := r.InUseBytes(), r.InUseObjects()
		if bytes <= 0 || objs <= 0 {
			continue
		}
		for _, pc := range r.Stack() {
			if h.isOutside(pc) {
				continue next
			}
		}
		scale := 1.0
		if rate > 0 {
			scale = 1 / (1 - math.Exp(-float64(bytes)/float64(objs)/rate))
		}
		total += float64(bytes) * scale
	}
	return uint64(total)
}

// liveHeap returns the live heap after a full collection.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchReader is a metric reader that keeps histograms exponential, so the
// event duration's quantiles come out within a few percent instead of at
// the coarse bucket bounds the service exports.
func benchReader() *sdkmetric.ManualReader {
	return sdkmetric.NewManualReader(sdkmetric.WithAggregationSelector(func(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
		if k == sdkmetric.InstrumentKindHistogram {
			return sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 320, MaxScale: 20}
		}
		return sdkmetric.DefaultAggregationSelector(k)
	}))
}

// serviceMetrics is what the bench reads from the service's own metrics.
type serviceMetrics struct {
	intents    int64            // crmshare.intents, every outcome
	decisions  map[string]int64 // crmshare.events by decision
	callsByAct map[string]int64 // crmshare.share_calls by action
	durations  []exponentialHist
}

type exponentialHist struct {
	scale     int32
	zeroCount uint64
	offset    int32
	counts    []uint64
}

func collectMetrics(ctx context.Context, r *sdkmetric.ManualReader) (serviceMetrics, error) {
	var rm metricdata.ResourceMetrics
	if err := r.Collect(ctx, &rm); err != nil {
		return serviceMetrics{}, err
	}
	out := serviceMetrics{decisions: make(map[string]int64), callsByAct: make(map[string]int64)}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch m.Name {
			case "crmshare.intents":
				if s, ok := m.Data.(metricdata.Sum[int64]); ok {
					for _, dp := range s.DataPoints {
						out.intents += dp.Value
					}
				}
			case "crmshare.share_calls":
				if s, ok := m.Data.(metricdata.Sum[int64]); ok {
					for _, dp := range s.DataPoints {
						a, _ := dp.Attributes.Value("action")
						out.callsByAct[a.AsString()] += dp.Value
					}
				}
			case "crmshare.events":
				if s, ok := m.Data.(metricdata.Sum[int64]); ok {
					for _, dp := range s.DataPoints {
						d, _ := dp.Attributes.Value("decision")
						out.decisions[d.AsString()] += dp.Value
					}
				}
			case "crmshare.event.duration":
				if h, ok := m.Data.(metricdata.ExponentialHistogram[float64]); ok {
					for _, dp := range h.DataPoints {
						out.durations = append(out.durations, exponentialHist{scale: dp.Scale, zeroCount: dp.ZeroCount,
							offset: dp.PositiveBucket.Offset, counts: dp.PositiveBucket.Counts})
					}
				}
			}
		}
	}
	return out, nil
}

// quantile returns the q-quantile (0..1) of the merged histograms, in the
// histograms' unit, taking the geometric middle of the bucket it falls in.
func quantile(hs []exponentialHist, q float64) float64 {
	if len(hs) == 0 {
		return 0
	}
	// Bring every histogram to the coarsest scale, then merge.
	scale := hs[0].scale
	for _, h := range hs {
		scale = min(scale, h.scale)
	}
	merged := make(map[int32]uint64)
	var zero, total uint64
	for _, h := range hs {
		zero += h.zeroCount
		total += h.zeroCount
		shift := h.scale - scale
		for i, c := range h.counts {
			merged[(h.offset+int32(i))>>shift] += c
			total += c
		}
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank <= zero {
		return 0
	}
	lo, hi := int32(math.MaxInt32), int32(math.MinInt32)
	for k := range merged {
		lo, hi = min(lo, k), max(hi, k)
	}
	seen := zero
	base := math.Exp2(math.Exp2(-float64(scale)))
	for k := lo; k <= hi; k++ {
		seen += merged[k]
		if seen >= rank {
			// Bucket k holds (base^k, base^(k+1)].
			return math.Pow(base, float64(k)+0.5)
		}
	}
	return math.Pow(base, float64(hi)+1)
}

// procCPU is the user plus system CPU time so far of another process, read
// from /proc; false where there is no /proc (the bench then leaves the
// infrastructure's CPU out).
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th, in clock ticks.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	// USER_HZ is 100 on every Linux the bench runs on.
	return time.Duration(ut+st) * 10 * time.Millisecond, true
}
