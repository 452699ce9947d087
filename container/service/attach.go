package service

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/container/shim/client"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
)

// AttachOptions select the streams of an attach.
type AttachOptions struct {
	Stdin, Stdout, Stderr bool
}

// Attach returns a connection to the container's stdio (Docker's stdcopy
// frames without a TTY, raw bytes with one; writes are stdin, CloseWrite
// ends it) and the record. For a container that is not running it waits
// for its next start (as `docker run` and `docker start -a` need), or
// until ctx ends.
func (s *Service) Attach(ctx context.Context, name string, o AttachOptions) (*net.UnixConn, *store.Container, error) {
	rec, err := s.store.Get(name)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case rec.State.Paused:
		return nil, nil, fmt.Errorf("You cannot attach to a paused container, unpause it first: %w", errdefs.ErrConflict)
	case rec.State.Restarting:
		return nil, nil, fmt.Errorf("You cannot attach to a restarting container, wait until it is running: %w", errdefs.ErrConflict)
	}
	s.publish(rec, events.ActionAttach, nil)
	c := s.ctr(rec.ID)
	opts := client.AttachOptions{Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr}
	c.mu.Lock()
	sh := c.shim
	if sh == nil {
		sh = c.launched
	}
	if sh != nil {
		c.mu.Unlock()
		conn, err := sh.Attach(ctx, opts)
		return conn, rec, err
	}
	p := &pendingAttach{opts: opts, ready: make(chan attachResult, 1)}
	c.pending = append(c.pending, p)
	c.mu.Unlock()
	select {
	case r := <-p.ready:
		return r.conn, rec, r.err
	case <-ctx.Done():
		c.mu.Lock()
		for i, q := range c.pending {
			if q == p {
				c.pending = append(c.pending[:i], c.pending[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		select {
		case r := <-p.ready: // connected meanwhile
			if r.conn != nil {
				r.conn.Close()
			}
		default:
		}
		return nil, nil, ctx.Err()
	}
}

// Resize sets the container's TTY size.
func (s *Service) Resize(ctx context.Context, name string, height, width uint) error {
	rec, c, err := s.running(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	sh := c.shim
	c.mu.Unlock()
	if sh == nil {
		return fmt.Errorf("Container %s is not running: %w", rec.ID, errdefs.ErrConflict)
	}
	if err := sh.Resize(ctx, "", uint16(height), uint16(width)); err != nil {
		return err
	}
	s.publish(rec, events.ActionResize, map[string]string{"height": strconv.FormatUint(uint64(height), 10), "width": strconv.FormatUint(uint64(width), 10)})
	return nil
}

// RunDone returns a channel closed when the container's current run ends
// (already closed when it does not run): a log follower stops there.
func (s *Service) RunDone(id string) <-chan struct{} {
	c := s.ctr(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exited != nil {
		return c.exited
	}
	done := make(chan struct{})
	close(done)
	return done
}
