package proxy

import (
	"slices"
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

// PortChange says that the Service port Key (ServicePort.Key) changed:
// Port is its new version, nil when it is gone.
type PortChange struct {
	Key  string
	Port *ServicePort
}

// PortCache keeps every Service's ports and rebuilds only the Services that
// informer handlers marked as changed, so the work of a sync follows the
// change, not the cluster: Update returns the Service ports of the marked
// Services, which Syncer.Apply takes.
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

// Update rebuilds the marked Services from src (every Service on the first
// call and after MarkAll or a new topology) and returns what changed: the
// new versions of their ports and the keys of ports that are gone. A
// Service rebuilt the same still yields its ports (new pointers); the
// Syncer finds them unchanged. On error the marks are kept for the next
// call.
func (c *PortCache) Update(topo Topology, src ServiceSource) ([]PortChange, error) {
	dirty, all := c.take()
	if topo != c.topo || !c.primed {
		all = true
	}
	fail := func(err error) ([]PortChange, error) {
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
	var changes []PortChange
	for key, sps := range next {
		c.lastKeys = append(c.lastKeys, key)
		for _, old := range c.bySvc[key] {
			if !slices.ContainsFunc(sps, func(sp *ServicePort) bool { return sp.Key() == old.Key() }) {
				changes = append(changes, PortChange{Key: old.Key()})
			}
		}
		for _, sp := range sps {
			changes = append(changes, PortChange{Key: sp.Key(), Port: sp})
		}
		if len(sps) == 0 {
			delete(c.bySvc, key)
		} else {
			c.bySvc[key] = sps
		}
	}
	return changes, nil
}

// All returns the ports of every Service, in no particular order (it walks
// the whole cache: for tests and tools, not for a sync).
func (c *PortCache) All() []*ServicePort {
	var out []*ServicePort
	for _, sps := range c.bySvc {
		out = append(out, sps...)
	}
	return out
}

// Changed returns the Services the last Update rebuilt.
func (c *PortCache) Changed() []string { return c.lastKeys }
