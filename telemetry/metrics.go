package telemetry

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// secondsBuckets are histogram boundaries for durations in seconds, from a
// fast Zoho call to an event stuck behind retries. The SDK's defaults
// (0..10000) assume milliseconds and would put every sample in the first bucket.
var secondsBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// aggregationSelector is the SDK default except that histograms use
// secondsBuckets. An instrument created with WithExplicitBucketBoundaries
// keeps its own boundaries: the SDK prefers that advice over the reader's.
func aggregationSelector(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	if k == sdkmetric.InstrumentKindHistogram {
		return sdkmetric.AggregationExplicitBucketHistogram{Boundaries: secondsBuckets}
	}
	return sdkmetric.DefaultAggregationSelector(k)
}

// newPrometheus builds a registry of our own (never the global default, so
// tests and libraries cannot collide on it) holding the OTel exporter and the
// Go runtime and process collectors, and the /metrics handler for it.
func newPrometheus(logger *slog.Logger) (*otelprom.Exporter, http.Handler, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, nil, fmt.Errorf("register go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, nil, fmt.Errorf("register process collector: %w", err)
	}
	// UnderscoreEscapingWithSuffixes is this exporter version's default; the
	// metrics test pins the names it produces (crmshare_events_total,
	// crmshare_event_duration_seconds). Scope labels (otel_scope_name, ...) are
	// left out: every series would carry the Go package path for nothing.
	// target_info stays, with service.name and service.version.
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithoutScopeInfo(),
		otelprom.WithAggregationSelector(aggregationSelector),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          reg, // promhttp_metric_handler_errors_total
		EnableOpenMetrics: true,
	})
	return exp, h, nil
}
