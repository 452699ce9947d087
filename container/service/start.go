package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/container/logs"
	"github.com/berth-dev/berth/container/shim"
	"github.com/berth-dev/berth/container/shim/client"
	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
)

// pendingAttach is an attach made while the container is not running: it
// is connected when the container next starts, before its process runs,
// so that `docker run` (attach, then start) loses no output.
type pendingAttach struct {
	opts  client.AttachOptions
	ready chan attachResult
}

type attachResult struct {
	conn *net.UnixConn
	err  error
}

// Start starts a created or stopped container.
func (s *Service) Start(ctx context.Context, name string) error {
	rec, c, unlock, err := s.lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	return s.start(ctx, c, rec, true)
}

// start runs rec; c.op is held. byUser is a start or restart the user
// asked for, not one of the restart policy's.
func (s *Service) start(ctx context.Context, c *ctr, rec *store.Container, byUser bool) error {
	switch st := rec.State; {
	case st.Running && st.Paused:
		return fmt.Errorf("cannot start a paused container, try unpause instead: %w", errdefs.ErrConflict)
	case st.Running && !st.Restarting:
		return fmt.Errorf("container %s is already running: %w", rec.ID, errdefs.ErrNotModified)
	case st.RemovalInProgress || st.Dead:
		return fmt.Errorf("container is marked for removal and cannot be started: %w", errdefs.ErrConflict)
	}
	if byUser && rec.RestartCount != 0 {
		// As dockerd: the user's start begins a new count of the policy's
		// restarts (and of their backoff).
		var err error
		if rec, err = s.store.SetState(rec.ID, func(r *store.Container) error { r.RestartCount = 0; return nil }); err != nil {
			return fmt.Errorf("container %s: reset the restart count: %w", c.id, err)
		}
	}
	// A start outlives the request that asked for it.
	ctx = context.WithoutCancel(ctx)
	starting := make(chan struct{})
	c.mu.Lock()
	c.starting = starting
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.starting, c.launched = nil, nil
		c.mu.Unlock()
		close(starting)
	}()
	failed := func(err error) error {
		s.failPending(c, err)
		if rec.HostConfig.AutoRemove {
			// As dockerd: a --rm container that cannot start is removed
			// (`docker run --rm` waits for that). Not here: c.op is held.
			go s.Remove(context.Background(), rec.ID, RemoveOptions{Force: true, Volumes: true})
		}
		return err
	}
	sh, err := s.launch(ctx, rec)
	if err != nil {
		msg := err.Error()
		code := spec.ExitCodeOf(msg)
		s.store.SetState(rec.ID, func(r *store.Container) error {
			r.State.Running, r.State.Restarting, r.State.Pid = false, false, 0
			r.State.ExitCode, r.State.Error = code, msg
			return nil
		})
		s.teardown(rec.ID)
		c.notify()
		if code == 126 || code == 127 {
			return failed(fmt.Errorf("%s: %w", msg, errdefs.ErrInvalidArgument))
		}
		return failed(err)
	}
	s.connectPending(ctx, c, sh)
	if err := sh.Start(ctx); err != nil {
		sh.Kill(ctx, 9, true)
		sh.Wait(ctx, "")
		// With a deferred create the runtime's create errors (a missing
		// executable: 127) come from the start.
		// Worded as dockerd's (its shim's and runc's layers) around
		// the runtime's own message, which names the container.
		msg := "failed to create task for container: OCI runtime create failed: " + err.Error()
		code := spec.ExitCodeOf(msg)
		s.store.SetState(rec.ID, func(r *store.Container) error {
			r.State.Running, r.State.Restarting, r.State.Pid = false, false, 0
			r.State.ExitCode, r.State.Error = code, msg
			return nil
		})
		s.teardown(rec.ID)
		c.notify()
		if code == 126 || code == 127 {
			return failed(fmt.Errorf("%s: %w", msg, errdefs.ErrInvalidArgument))
		}
		return failed(fmt.Errorf("failed to create task for container: OCI runtime create failed: %w", err))
	}
	exited := make(chan struct{})
	c.mu.Lock()
	c.shim, c.exited, c.stopping = sh, exited, false
	c.mu.Unlock()
	rec, err = s.store.SetState(rec.ID, func(r *store.Container) error {
		// FinishedAt stays the previous run's while this one runs, as dockerd.
		r.State = store.State{Running: true, Pid: sh.Pid(), StartedAt: now(), FinishedAt: r.State.FinishedAt, Health: r.State.Health}
		r.HasBeenStartedBefore, r.HasBeenManuallyStopped = true, false
		s.takePeerNames(r)
		return nil
	})
	if err != nil {
		s.opts.Logf("container %s: record the start: %v", c.id, err)
	} else {
		s.publish(rec, events.ActionStart, nil)
		s.startHealth(c, rec)
	}
	c.notify()
	go s.monitor(c, sh, exited)
	return nil
}

// launch mounts rec's rootfs, writes its bundle and starts its shim. With
// a TTY the shim creates the container at once (its process waits for
// start); otherwise it does so at start (DeferCreate), and, needing
// nothing of the bundle until then, it starts up while the bundle is made.
func (s *Service) launch(ctx context.Context, rec *store.Container) (_ *client.Shim, retErr error) {
	bundle := s.bundleDir(rec.ID)
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o700); err != nil {
		return nil, err
	}
	// Whatever a previous run left (its exit is in the record already).
	for _, f := range []string{shim.ExitFile, shim.SocketFile} {
		os.Remove(filepath.Join(bundle, f))
	}
	if err := snapshot.UnmountAll(rootfs); err != nil {
		return nil, err
	}
	logOpts, err := logs.ParseOptions(rec.HostConfig.LogConfig.Config)
	if err != nil {
		return nil, err
	}
	driver := shim.LogDriverJSONFile
	if rec.HostConfig.LogConfig.Type == "none" {
		driver = shim.LogDriverNone
	}
	cfg := shim.Config{
		ID: rec.ID, Bundle: bundle, Runtime: s.opts.Runtime, RuntimeRoot: s.runtimeRoot(),
		LogDriver: driver, LogPath: rec.LogPath, LogOptions: logOpts,
		Tty: rec.Config.Tty, OpenStdin: rec.Config.OpenStdin, StdinOnce: rec.Config.StdinOnce,
		Binary: s.opts.Shim, DeferCreate: !rec.Config.Tty,
		OwnPidNS: !rec.HostConfig.PidMode.IsHost() && !rec.HostConfig.PidMode.IsContainer(),
	}
	type started struct {
		sh  *client.Shim
		err error
	}
	var early chan started
	if cfg.DeferCreate {
		early = make(chan started, 1)
		go func() {
			sh, err := client.Start(ctx, bundle, cfg)
			early <- started{sh, err}
		}()
		defer func() {
			if retErr == nil {
				return
			}
			// The bundle could not be made: end the shim, which has no
			// container yet.
			if r := <-early; r.err == nil {
				r.sh.Kill(context.WithoutCancel(ctx), 9, true)
				r.sh.Wait(context.WithoutCancel(ctx), "")
			}
		}()
	}
	mounts, err := s.opts.Images.ContainerMounts(ctx, rec.ID)
	if err != nil {
		return nil, fmt.Errorf("container %s: rootfs: %w", rec.ID, err)
	}
	if mounts, err = s.withInitLayer(rec, mounts); err != nil {
		return nil, fmt.Errorf("container %s: %w", rec.ID, err)
	}
	if err := s.openDirsToRemapped(rec); err != nil {
		return nil, fmt.Errorf("container %s: %w", rec.ID, err)
	}
	if rec.HostConfig.AutoRemove {
		mounts = volatileUpper(mounts)
		if err := acceptVolatile(mounts); err != nil {
			return nil, fmt.Errorf("container %s: %w", rec.ID, err)
		}
	}
	if err := s.mountRootfs(rec, mounts, rootfs, filepath.Join(bundle, "idmap")); err != nil {
		return nil, fmt.Errorf("container %s: mount rootfs: %w", rec.ID, err)
	}
	nsPaths, ipcShm, err := s.joinedNamespaces(rec)
	if err != nil {
		return nil, err
	}
	userMounts, rootProp, err := s.mountSpecs(rec, rootfs)
	if err != nil {
		return nil, err
	}
	links, err := s.linkInputs(rec)
	if err != nil {
		return nil, err
	}
	netSetup, err := s.networkSetup(ctx, rec)
	if err != nil {
		return nil, err
	}
	uidMaps, gidMaps := s.specMappings(rec)
	sp, err := spec.Generate(spec.Input{
		UIDMappings: uidMaps, GIDMappings: gidMaps, UserNSPath: s.joinedUserns(rec, nsPaths),
		NetNSPath: netSetup.NetNS, Addresses: netSetup.Addresses, EmbeddedDNS: netSetup.EmbeddedDNS, Links: links,
		HostGateway: s.hostGateway(), NetworkPeer: netSetup.Peer,
		// The record's config was merged with the image's at create (a
		// second merge would undo --entrypoint "").
		ID: rec.ID, Config: rec.Config, HostConfig: rec.HostConfig,
		Rootfs: rootfs, Dir: s.store.Dir(rec.ID), InitBinary: s.opts.Init, CgroupParent: s.opts.CgroupParent,
		NamespacePaths: nsPaths, IPCShm: ipcShm,
		Mounts: userMounts, RootfsPropagation: rootProp,
	})
	if err != nil {
		return nil, err
	}
	if err := s.remapNetSysctls(rec, sp, netSetup.NetNS); err != nil {
		return nil, fmt.Errorf("container %s: %w", rec.ID, err)
	}
	if err := s.remapHostMounts(rec, sp, netSetup.NetNS); err != nil {
		return nil, fmt.Errorf("container %s: %w", rec.ID, err)
	}
	b, err := json.Marshal(sp)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return nil, err
	}
	if early != nil {
		r := <-early
		early <- r // for the deferred cleanup, which then finds no error
		return r.sh, r.err
	}
	return client.Start(ctx, bundle, cfg)
}

// takePeerNames gives a --network container:X container X's hostname
// and domain name, which it runs with, in its record, as dockerd does at
// every start (inspect shows them).
func (s *Service) takePeerNames(r *store.Container) {
	if !r.HostConfig.NetworkMode.IsContainer() {
		return
	}
	peer, err := s.store.Get(r.HostConfig.NetworkMode.ConnectedContainer())
	if err != nil {
		return
	}
	r.Config.Hostname, r.Config.Domainname = peer.Config.Hostname, peer.Config.Domainname
}

// connectPending attaches the clients that waited for this start.
func (s *Service) connectPending(ctx context.Context, c *ctr, sh *client.Shim) {
	c.mu.Lock()
	pending := c.pending
	c.pending, c.launched = nil, sh
	c.mu.Unlock()
	for _, p := range pending {
		conn, err := sh.Attach(ctx, p.opts)
		p.ready <- attachResult{conn, err}
	}
}

// failPending ends the attaches that waited for a start that failed.
func (s *Service) failPending(c *ctr, err error) {
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, p := range pending {
		p.ready <- attachResult{err: err}
	}
}

// teardown unmounts a container's rootfs and removes its bundle.
func (s *Service) teardown(id string) {
	s.unmountVolumes(id)
	s.networkTeardown(id)
	bundle := s.bundleDir(id)
	if err := snapshot.UnmountAll(filepath.Join(bundle, "rootfs")); err != nil {
		s.opts.Logf("container %s: %v", id, err)
		return
	}
	unmountShm(s.shmDir(id))
	if err := s.unmountRemapped(id); err != nil {
		s.opts.Logf("container %s: %v", id, err)
		return
	}
	if err := os.RemoveAll(bundle); err != nil {
		s.opts.Logf("container %s: remove bundle: %v", id, err)
	}
}

// monitor waits for the end of the run that sh supervises.
func (s *Service) monitor(c *ctr, sh *client.Shim, exited chan struct{}) {
	st, err := sh.Wait(context.Background(), "")
	if err != nil {
		// The shim went without recording an exit (killed): the
		// container's fate is unknown, as dockerd reports a lost task.
		s.opts.Logf("container %s: shim: %v", c.id, err)
		st = shim.ExitStatus{ExitCode: 255, FinishedAt: now()}
	}
	s.onExit(c, st, exited)
}

// onExit records the end of a run, then applies the restart policy or
// --rm.
func (s *Service) onExit(c *ctr, st shim.ExitStatus, exited chan struct{}) {
	s.stopHealth(c)
	if st.FinishedAt.IsZero() {
		st.FinishedAt = now()
	}
	// The run's bundle and mounts go before the record says it ended: a
	// start that follows a wait for the exit (it does not wait for this
	// goroutine) must not find the old run's teardown removing its files.
	s.teardown(c.id)
	rec, err := s.store.SetState(c.id, func(r *store.Container) error {
		r.State.Running, r.State.Paused, r.State.Restarting, r.State.Pid = false, false, false, 0
		r.State.ExitCode, r.State.OOMKilled, r.State.FinishedAt = st.ExitCode, st.OOMKilled, st.FinishedAt.UTC()
		stoppedHealth(&r.State)
		return nil
	})
	// die is told before anyone waiting for the exit wakes (a stop
	// answers then, and its stop event must come after), as dockerd does
	// under its container lock.
	if err == nil {
		if st.OOMKilled {
			s.publish(rec, events.ActionOOM, nil)
		}
		s.publish(rec, events.ActionDie, map[string]string{"exitCode": fmt.Sprint(st.ExitCode)})
	}
	c.mu.Lock()
	c.shim, c.exited = nil, nil
	stopping, restarting := c.stopping, c.restarting
	c.mu.Unlock()
	if exited != nil {
		close(exited)
	}
	s.dropExecs(c)
	c.notify()
	if err != nil {
		s.opts.Logf("container %s: record the exit: %v", c.id, err)
		return
	}
	if !stopping && shouldRestart(rec) {
		go s.restartLater(c, rec)
		return
	}
	if rec.HostConfig.AutoRemove && !restarting {
		if err := s.Remove(context.Background(), c.id, RemoveOptions{Force: true, Volumes: true}); err != nil && !errdefs.IsNotFound(err) {
			s.opts.Logf("container %s: --rm: %v", c.id, err)
		}
	}
}

// shouldRestart applies the restart policy to a run that just ended.
func shouldRestart(rec *store.Container) bool {
	p := rec.HostConfig.RestartPolicy
	switch p.Name {
	case container.RestartPolicyAlways:
		return true
	case container.RestartPolicyUnlessStopped:
		return !rec.HasBeenManuallyStopped
	case container.RestartPolicyOnFailure:
		return rec.State.ExitCode != 0 && (p.MaximumRetryCount == 0 || rec.RestartCount < p.MaximumRetryCount)
	}
	return false
}

// Restart backoff, as dockerd: 100 ms doubling up to a minute, back to
// the start after a run of 10 s or more.
const (
	restartFirst = 100 * time.Millisecond
	restartMax   = time.Minute
	restartReset = 10 * time.Second
)

func restartDelay(rec *store.Container) time.Duration {
	if rec.State.FinishedAt.Sub(rec.State.StartedAt) >= restartReset {
		return restartFirst
	}
	d := restartFirst
	for i := 0; i < rec.RestartCount && d < restartMax; i++ {
		d *= 2
	}
	return min(d, restartMax)
}

// restartLater starts rec again after the backoff, unless it was stopped
// or removed meanwhile.
func (s *Service) restartLater(c *ctr, rec *store.Container) {
	delay := restartDelay(rec)
	if _, err := s.store.SetState(c.id, func(r *store.Container) error {
		r.State.Running, r.State.Restarting = true, true
		return nil
	}); err != nil {
		return
	}
	c.notify()
	select {
	case <-time.After(delay):
	case <-s.done:
		return
	}
	c.op.Lock()
	defer c.op.Unlock()
	rec, err := s.store.Get(c.id)
	if err != nil || !rec.State.Restarting {
		return // stopped or removed during the backoff
	}
	if rec, err = s.store.SetState(c.id, func(r *store.Container) error { r.RestartCount++; return nil }); err != nil {
		return
	}
	if err := s.start(context.Background(), c, rec, false); err != nil {
		s.opts.Logf("container %s: restart: %v", c.id, err)
	}
}
