package proxy

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// ServiceSource reads Services and their EndpointSlices (listers and an
// index in the agent, plain maps in tests).
type ServiceSource interface {
	// ServiceKeys returns "namespace/name" of every Service.
	ServiceKeys() ([]string, error)
	// Service returns the Service (nil when it is gone) and its slices.
	Service(key string) (*v1.Service, []*discoveryv1.EndpointSlice, error)
}

// PortCache keeps every Service's ports and rebuilds only the Services that
// informer handlers marked as changed, so the work of a sync follows the
// change, not the cluster. Unchanged Services keep their *ServicePort
// pointers, which lets the Syncer reuse their rendered fragments without
// looking at them.
type PortCache struct {
	// mu guards the fields below; handlers write them.
	mu    sync.Mutex
	dirty map[string]bool
	all   bool

	// owned by the one caller of Update
	topo     Topology
	bySvc    map[string][]*ServicePort
	primed   bool
	lastKeys []string // the Services changed by the last Update
}

// NewPortCache returns a cache that rebuilds everything on its first
// Update.
func NewPortCache() *PortCache {
	return &PortCache{dirty: map[string]bool{}, all: true, bySvc: map[string][]*ServicePort{}}
}

// Mark records that the Service "namespace/name" (or one of its slices)
// changed. Safe to call from informer handlers.
func (c *PortCache) Mark(key string) {
	if key == "" {
		return
	}
	c.mu.Lock()
	c.dirty[key] = true
	c.mu.Unlock()
}

// MarkAll makes the next Update rebuild every Service (the node's topology
// changed, or a list failed).
func (c *PortCache) MarkAll() {
	c.mu.Lock()
	c.all = true
	c.mu.Unlock()
}

func (c *PortCache) take() (map[string]bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, all := c.dirty, c.all
	c.dirty, c.all = map[string]bool{}, false
	return d, all
}

// Update rebuilds the marked Services from src and returns the ports of all
// Services, in no particular order. On error the marks are kept for the next
// call.
func (c *PortCache) Update(topo Topology, src ServiceSource) ([]*ServicePort, error) {
	dirty, all := c.take()
	if topo != c.topo || !c.primed {
		all = true
	}
	fail := func(err error) ([]*ServicePort, error) {
		c.mu.Lock()
		for k := range dirty {
			c.dirty[k] = true
		}
		c.all = c.all || all
		c.mu.Unlock()
		return nil, err
	}
	if all {
		keys, err := src.ServiceKeys()
		if err != nil {
			return fail(err)
		}
		for k := range c.bySvc {
			dirty[k] = true // gone unless listed
		}
		for _, k := range keys {
			dirty[k] = true
		}
	}
	next := make(map[string][]*ServicePort, len(dirty))
	for key := range dirty {
		svc, sls, err := src.Service(key)
		if err != nil {
			return fail(err)
		}
		if svc != nil {
			next[key] = ServicePortsOf(topo, svc, sls)
		} else {
			next[key] = nil
		}
	}
	c.topo, c.primed = topo, true
	c.lastKeys = c.lastKeys[:0]
	for key, sps := range next {
		c.lastKeys = append(c.lastKeys, key)
		if len(sps) == 0 {
			delete(c.bySvc, key)
		} else {
			c.bySvc[key] = sps
		}
	}
	out := make([]*ServicePort, 0, len(c.bySvc))
	for _, sps := range c.bySvc {
		out = append(out, sps...)
	}
	return out, nil
}

// Changed returns the Services the last Update rebuilt.
func (c *PortCache) Changed() []string { return c.lastKeys }
