package service

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/container/names"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
)

// RemoveOptions are the parameters of a remove.
type RemoveOptions struct {
	// Force kills a running container first.
	Force bool
	// Volumes removes its anonymous volumes.
	Volumes bool
}

// killWait bounds how long a forced remove waits for a killed container.
const killWait = 10 * time.Second

// Remove deletes a container: its record, log, snapshot and bundle.
func (s *Service) Remove(ctx context.Context, name string, o RemoveOptions) error {
	rec, c, unlock, err := s.lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	if rec.State.Running && !rec.State.Restarting {
		if !o.Force {
			return fmt.Errorf("You cannot remove a running container %s. Stop the container before attempting removal or force remove: %w", rec.ID, errdefs.ErrConflict)
		}
		c.mu.Lock()
		sh, exited := c.shim, c.exited
		c.stopping = true
		c.mu.Unlock()
		if sh != nil {
			if rec.State.Paused {
				s.runtime("resume", rec.ID)
			}
			sh.Kill(ctx, syscall.SIGKILL, true)
			select {
			case <-exited:
			case <-time.After(killWait):
				return fmt.Errorf("could not kill running container %s, cannot remove: %w", rec.ID, errdefs.ErrUnavailable)
			}
		}
	}
	mark := func(r *store.Container) error {
		r.State.RemovalInProgress, r.State.Restarting, r.State.Running = true, false, false
		return nil
	}
	// The mark is made durable so that a crash part way never leaves a
	// container to use whose files are half gone. A --rm container that
	// ran needs no durable mark: the daemon removes it at its next start
	// whatever its record says (startAtBoot), which spares `run --rm`
	// two fsyncs.
	if rec.HostConfig.AutoRemove && rec.HasBeenStartedBefore {
		rec, err = s.store.SetState(rec.ID, mark)
	} else {
		rec, err = s.store.Update(rec.ID, mark)
	}
	if err != nil {
		return err
	}
	return s.finishRemove(ctx, c, rec, o.Volumes)
}

// finishRemove deletes what is left of a container marked for removal
// (also after a crash mid-removal).
func (s *Service) finishRemove(ctx context.Context, c *ctr, rec *store.Container, removeVolumes bool) error {
	s.teardown(rec.ID)
	s.networkForget(rec.ID)
	if err := s.opts.Images.RemoveContainerSnapshot(context.WithoutCancel(ctx), rec.ID); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", rec.ID, err)
	}
	s.dropExecs(c)
	// Before the record goes: a waiter that finds it gone answers from it.
	c.mu.Lock()
	c.final = rec
	c.mu.Unlock()
	if err := s.store.Delete(rec.ID); err != nil {
		return err
	}
	s.releaseVolumes(rec, removeVolumes)
	c.mu.Lock()
	c.removed = true
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, p := range pending {
		p.ready <- attachResult{err: fmt.Errorf("container %s was removed: %w", rec.ID, errdefs.ErrNotFound)}
	}
	c.notify()
	s.mu.Lock()
	delete(s.ctrs, rec.ID)
	s.mu.Unlock()
	s.publish(rec, events.ActionDestroy, nil)
	return nil
}

// Rename gives the container newName.
func (s *Service) Rename(ctx context.Context, name, newName string) error {
	rec, err := s.store.Get(name)
	if err != nil {
		return err
	}
	if _, err := names.Validate(newName); err != nil {
		// dockerd validates the name with its slash at rename.
		_, err = names.Validate("/" + strings.TrimPrefix(newName, "/"))
		return fmt.Errorf("Error when allocating new name: %w", err)
	}
	old := rec.Name
	if err := s.store.Rename(rec.ID, newName); err != nil {
		if errdefs.IsConflict(err) {
			// dockerd's words for a name taken at rename.
			return fmt.Errorf("Error when allocating new name: %w", err)
		}
		return err
	}
	if rec, err = s.store.Get(rec.ID); err == nil {
		s.publish(rec, events.ActionRename, map[string]string{"oldName": old})
	}
	return nil
}

// Prune removes the containers that do not run and pass filters (label,
// until), reporting the space their writable layers took.
func (s *Service) Prune(ctx context.Context, filters map[string][]string) (container.PruneReport, error) {
	var until time.Time
	for _, v := range filters["until"] {
		t, err := parseTimestamp(v)
		if err != nil {
			return container.PruneReport{}, err
		}
		until = t
	}
	lf := map[string][]string{}
	if l := filters["label"]; len(l) > 0 {
		lf["label"] = l
	}
	all, err := s.store.List(store.ListOptions{All: true, Filters: lf})
	if err != nil {
		return container.PruneReport{}, err
	}
	var rep container.PruneReport
	for _, rec := range all {
		if rec.State.Running || (!until.IsZero() && !rec.Created.Before(until)) {
			continue
		}
		size := s.RWSize(ctx, rec.ID)
		if err := s.Remove(ctx, rec.ID, RemoveOptions{}); err != nil {
			if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
				continue
			}
			return rep, err
		}
		rep.ContainersDeleted = append(rep.ContainersDeleted, rec.ID)
		rep.SpaceReclaimed += uint64(size)
	}
	if s.opts.Events != nil {
		s.opts.Events.Publish(events.ContainerEventType, events.ActionPrune, events.Actor{Attributes: map[string]string{"reclaimed": strconv.FormatUint(rep.SpaceReclaimed, 10)}})
	}
	return rep, nil
}

// RWSize is the size of the files in the container's writable layer.
func (s *Service) RWSize(ctx context.Context, id string) int64 {
	mounts, err := s.opts.Images.ContainerMounts(ctx, id)
	if err != nil || len(mounts) == 0 {
		return 0
	}
	upper, ok := mounts[0].Option("upperdir")
	if !ok {
		if mounts[0].Type != "bind" {
			return 0
		}
		upper = mounts[0].Source
	}
	var n int64
	filepath.WalkDir(upper, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// parseTimestamp reads Docker's filter times: RFC 3339 (with or without
// a zone), Unix seconds, or a duration before now ("24h").
func parseTimestamp(v string) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	var sec int64
	if _, err := fmt.Sscanf(v, "%d", &sec); err == nil {
		return time.Unix(sec, 0), nil
	}
	return time.Time{}, fmt.Errorf("invalid filter 'until=%s': %w", v, errdefs.ErrInvalidArgument)
}
