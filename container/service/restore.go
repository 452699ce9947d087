package service

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/container/shim"
	"github.com/berth-dev/berth/container/shim/client"
	"github.com/berth-dev/berth/container/store"
)

// restore reconciles the records with the shims after a daemon start:
// running containers are followed again, exits that happened while the
// daemon was away are recorded (with their restart policy or --rm), and
// interrupted removals are finished, and so are creates cut short.
func (s *Service) restore(ctx context.Context) {
	all, err := s.store.List(store.ListOptions{All: true})
	if err != nil {
		s.opts.Logf("restore: %v", err)
		return
	}
	for _, rec := range all {
		c := s.ctr(rec.ID)
		switch {
		case rec.State.RemovalInProgress:
			if err := s.finishRemove(ctx, c, rec, false); err != nil {
				s.opts.Logf("container %s: finish removal: %v", rec.ID, err)
			}
		case s.createCutShort(rec):
			// Its client got no answer; started, it would join the
			// default network whatever it asked for. It goes, as a
			// failed create's container does.
			s.opts.Logf("container %s: its create was cut short (no network record): removing it", rec.ID)
			if err := s.finishRemove(ctx, c, rec, true); err != nil {
				s.opts.Logf("container %s: remove: %v", rec.ID, err)
			}
		case rec.State.Running && !rec.State.Restarting:
			s.reattach(ctx, c, rec)
		case rec.State.Restarting:
			go s.restartLater(c, rec)
		default:
			s.stopOrphan(ctx, rec)
			s.networkTeardown(rec.ID) // a start cut short by a crash
			s.startAtBoot(c, rec)
		}
	}
}

// removeOrphanSnapshots removes the container snapshots that have no
// container directory: a create cut short between preparing the rootfs
// and writing the record, or a --rm container's, neither synced, of which
// a power loss kept only the snapshot. (A record that cannot be read
// keeps its snapshot: its directory is there.)
func (s *Service) removeOrphanSnapshots(ctx context.Context) {
	keys, err := s.opts.Images.ContainerSnapshots(ctx)
	if err != nil {
		s.opts.Logf("restore: list container snapshots: %v", err)
		return
	}
	for _, key := range keys {
		if _, err := os.Lstat(s.store.Dir(key)); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		s.opts.Logf("container snapshot %s has no container: removing it", key)
		if err := s.opts.Images.RemoveContainerSnapshot(ctx, key); err != nil {
			s.opts.Logf("remove container snapshot %s: %v", key, err)
		}
	}
}

// createCutShort reports whether the daemon died in rec's create between
// writing its record and registering its networks.
func (s *Service) createCutShort(rec *store.Container) bool {
	return s.opts.Networks != nil && !rec.HasBeenStartedBefore &&
		!rec.HostConfig.NetworkMode.IsContainer() && !s.opts.Networks.Registered(rec.ID)
}

// stopOrphan ends the shim of a start the daemon did not see through (it
// died between launching the shim and recording the run): the client got
// no answer, so the record stays as it is, and the half-started container
// is killed and its bundle taken down, as after an exit.
func (s *Service) stopOrphan(ctx context.Context, rec *store.Container) {
	bundle := s.bundleDir(rec.ID)
	if _, err := os.Stat(filepath.Join(bundle, shim.ConfigFile)); err != nil {
		return // no shim was launched, or its run was taken down
	}
	// A shim launched just before the crash may not listen yet.
	var sh *client.Shim
	var err error
	for deadline := time.Now().Add(time.Second); ; time.Sleep(20 * time.Millisecond) {
		if sh, err = client.Connect(ctx, bundle); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err == nil {
		if _, exited := sh.Exited(); !exited {
			s.opts.Logf("container %s: stopping the shim of an interrupted start", rec.ID)
			if err := sh.Kill(ctx, syscall.SIGKILL, true); err != nil {
				s.opts.Logf("container %s: kill: %v", rec.ID, err)
			}
			wctx, cancel := context.WithTimeout(ctx, killWait)
			_, err = sh.Wait(wctx, "")
			cancel()
			if err != nil {
				s.opts.Logf("container %s: wait for the killed shim: %v", rec.ID, err)
			}
		}
	}
	s.teardown(rec.ID)
}

// reattach follows a container that was running when the daemon stopped.
func (s *Service) reattach(ctx context.Context, c *ctr, rec *store.Container) {
	sh, err := client.Connect(ctx, s.bundleDir(rec.ID))
	if err != nil {
		// No shim and no recorded exit: the host rebooted, or the shim
		// was killed. The container is gone.
		s.opts.Logf("container %s: %v", rec.ID, err)
		s.onExit(c, shim.ExitStatus{ExitCode: 255}, nil)
		return
	}
	if st, ok := sh.Exited(); ok {
		s.onExit(c, st, nil)
		return
	}
	exited := make(chan struct{})
	c.mu.Lock()
	c.shim, c.exited = sh, exited
	c.mu.Unlock()
	s.startHealth(c, rec)
	go s.monitor(c, sh, exited)
}

// startAtBoot applies what dockerd does for stopped containers at its
// start: --rm ones that ended while it was away are removed, and those
// whose policy is always (or unless-stopped, not stopped by hand) start.
func (s *Service) startAtBoot(c *ctr, rec *store.Container) {
	if !rec.HasBeenStartedBefore {
		return
	}
	if rec.HostConfig.AutoRemove {
		go func() {
			if err := s.Remove(context.Background(), rec.ID, RemoveOptions{Force: true, Volumes: true}); err != nil {
				s.opts.Logf("container %s: --rm: %v", rec.ID, err)
			}
		}()
		return
	}
	p := rec.HostConfig.RestartPolicy.Name
	if p == container.RestartPolicyAlways || (p == container.RestartPolicyUnlessStopped && !rec.HasBeenManuallyStopped) {
		go func() {
			if err := s.Start(context.Background(), rec.ID); err != nil {
				s.opts.Logf("container %s: start at daemon start: %v", rec.ID, err)
			}
		}()
	}
}
