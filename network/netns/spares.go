package netns

import (
	"os"
	"sync"
)

// Spares keeps one network namespace made ahead of need, held by an open
// file rather than a mount, so that a container's start only bind-mounts
// it (making one, with its loopback, takes 1 to 3 ms of a start here).
// The namespace taken is replaced in the background. Held namespaces go
// with the process: nothing is left on disk to clean after a crash.
type Spares struct {
	mu      sync.Mutex
	next    *os.File
	filling bool
	closed  bool
}

// Create makes a new network namespace bound on path, as the package's
// Create does, from the spare when there is one.
func (p *Spares) Create(path string) error {
	p.mu.Lock()
	ns := p.next
	p.next = nil
	p.mu.Unlock()
	p.fill()
	if ns == nil {
		return Create(path)
	}
	defer ns.Close()
	return bind(ns, path)
}

// fill makes a spare in the background unless one is there or coming.
func (p *Spares) fill() {
	p.mu.Lock()
	if p.closed || p.next != nil || p.filling {
		p.mu.Unlock()
		return
	}
	p.filling = true
	p.mu.Unlock()
	go func() {
		ns, err := open()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.filling = false
		if err != nil {
			return // the next Create makes its namespace itself
		}
		if p.closed || p.next != nil {
			ns.Close()
			return
		}
		p.next = ns
	}()
}

// Close lets the spare go and makes no more.
func (p *Spares) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.next != nil {
		p.next.Close()
		p.next = nil
	}
}
