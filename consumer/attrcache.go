package consumer

import (
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// maxAttrSets bounds an attrCache; beyond it sets are built per call.
const maxAttrSets = 1024

// attrCache keeps the attribute set of each label combination a metric
// records, so a measurement does not build and sort its attributes anew.
// consumer and zoho each keep a copy: they import only the OTel
// API, not one another (STYLE.md).
type attrCache[K comparable] struct {
	mu sync.RWMutex
	m  map[K]metric.MeasurementOption
}

// get returns the option for k, building it with attrs on first use.
func (c *attrCache[K]) get(k K, attrs func() []attribute.KeyValue) metric.MeasurementOption {
	c.mu.RLock()
	o, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return o
	}
	o = metric.WithAttributeSet(attribute.NewSet(attrs()...))
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[K]metric.MeasurementOption)
	}
	if len(c.m) < maxAttrSets {
		c.m[k] = o
	}
	c.mu.Unlock()
	return o
}
