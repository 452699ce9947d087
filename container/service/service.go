// Package service is the container side of the engine: it turns a create
// request into a record and a writable snapshot, a start into an OCI
// bundle run by a berth-shim, and follows every container through stop,
// restart policies, exec and removal. It keeps no state of its own that a
// crash could lose: records live in container/store, running containers
// in their shims, which a restarted daemon finds again (Open).
//
// On disk, per container:
//
//	<Root>/<id>/            the record (config.v2.json), its json-file log,
//	                        hosts, hostname and resolv.conf
//	<ExecRoot>/containers/<id>/
//	                        the bundle (config.json, rootfs/ mount point)
//	                        and the shim's state (shim.json, shim.sock,
//	                        exit.json): gone after a reboot, like the
//	                        containers themselves
//	<ExecRoot>/runtime/     berth-runtime's --root
package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/container/shim/client"
	"github.com/berth-dev/berth/container/store"
	imageservice "github.com/berth-dev/berth/image/service"
	"github.com/berth-dev/berth/internal/idmap"
	"github.com/berth-dev/berth/volume"
)

// Options configure a Service.
type Options struct {
	// Root holds the container records and logs (<data-root>/containers).
	Root string
	// ExecRoot holds bundles, shim state and the runtime's state
	// (<exec-root>); it should be on a tmpfs such as /run.
	ExecRoot string
	// Images resolves images and makes container snapshots.
	Images *imageservice.Service
	// Events receives container and exec events (may be nil).
	Events Publisher
	// Runtime, Shim and Init are the berth-runtime, berth-shim and
	// berth-init executables.
	Runtime, Shim, Init string
	// CgroupParent is the default cgroup parent ("" for spec's default).
	CgroupParent string
	// Volumes is the volume store (nil: a container asking for a volume
	// is refused).
	Volumes *volume.Store
	// Networks builds containers' network namespaces (nil: each
	// container gets a new, empty one from the runtime).
	Networks Networks
	// Userns, set under --userns-remap, gives every container not run with
	// --userns=host a user namespace with its mapping and shows it the
	// image layers through it.
	Userns *idmap.Layers
	// Logf reports what goes wrong in the background (restarts, restore).
	Logf func(format string, args ...any)
}

// Publisher is what the service needs of the events bus.
type Publisher interface {
	Publish(typ events.Type, action events.Action, actor events.Actor)
}

// Service manages containers. Its methods are safe for concurrent use.
type Service struct {
	opts  Options
	store *store.Store

	mu    sync.Mutex
	ctrs  map[string]*ctr // by id: containers with a runtime side or waiters
	execs map[string]*execEntry
	done  chan struct{} // closed by Close: stops restart timers
}

// ctr is the in-memory side of one container.
type ctr struct {
	id string
	// op serialises the operations that change what runs: start, stop,
	// restart, pause, remove.
	op sync.Mutex

	mu      sync.Mutex
	shim    *client.Shim
	exited  chan struct{} // closed when the current run ends; nil when not running
	changed chan struct{} // closed and replaced at every state change
	pending []*pendingAttach
	// launched is the shim of the start under way once it connects the
	// pending attaches: a later attach goes straight to it, not to a
	// pending list nobody reads until the next start.
	launched *client.Shim
	removed  bool
	// final is the record as it was removed: a waiter that saw no change
	// between the exit and the removal (they can follow each other
	// closely) answers from it.
	final    *store.Container
	stopping bool // a stop or kill by the user: no restart policy
	// restarting: the run ends for a restart by the user, so --rm does
	// not remove the container (dockerd's HasBeenManuallyRestarted).
	restarting bool
	// starting is closed when the start under way has recorded its
	// outcome: the process may talk (and a user answer with a signal)
	// before the record says it runs.
	starting chan struct{}
	execs    []string
	health   *healthMonitor // the prober of the current run, if any
}

// Open loads the records under opts.Root and reconnects to the shims of
// the containers that were running (live restore): those still running
// are followed again, those that ended meanwhile get their exit recorded
// (and their restart policy or --rm applied).
func Open(ctx context.Context, opts Options) (*Service, error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	for _, d := range []string{opts.Root, filepath.Join(opts.ExecRoot, "containers"), filepath.Join(opts.ExecRoot, "runtime")} {
		if err := os.MkdirAll(d, 0o710); err != nil {
			return nil, fmt.Errorf("container service: %w", err)
		}
	}
	if err := openToRemappedRoot(opts); err != nil {
		return nil, fmt.Errorf("container service: %w", err)
	}
	st, problems, err := store.Open(opts.Root)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		opts.Logf("%v (skipped)", p)
	}
	s := &Service{opts: opts, store: st, ctrs: map[string]*ctr{}, execs: map[string]*execEntry{}, done: make(chan struct{})}
	s.restoreVolumeRefs()
	s.restore(ctx)
	s.removeOrphanSnapshots(ctx)
	return s, nil
}

// Close stops pending restarts. Running containers keep running.
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	return nil
}

// Store is the record store (for listing and inspecting).
func (s *Service) Store() *store.Store { return s.store }

// ctr returns the in-memory side of container id, making it if needed.
func (s *Service) ctr(id string) *ctr {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.ctrs[id]
	if c == nil {
		c = &ctr{id: id, changed: make(chan struct{})}
		s.ctrs[id] = c
	}
	return c
}

// lock finds container name and takes its operation lock; the record it
// returns is read under the lock. Call unlock when done.
func (s *Service) lock(name string) (rec *store.Container, c *ctr, unlock func(), err error) {
	if rec, err = s.store.Get(name); err != nil {
		return nil, nil, nil, err
	}
	c = s.ctr(rec.ID)
	c.op.Lock()
	if rec, err = s.store.Get(rec.ID); err != nil {
		c.op.Unlock()
		return nil, nil, nil, err
	}
	return rec, c, c.op.Unlock, nil
}

// notify wakes everyone waiting for a state change of c.
func (c *ctr) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (s *Service) bundleDir(id string) string {
	return filepath.Join(s.opts.ExecRoot, "containers", id)
}

func (s *Service) runtimeRoot() string { return filepath.Join(s.opts.ExecRoot, "runtime") }

// publish sends a container event with Docker's attributes (name, image,
// labels, and extra).
func (s *Service) publish(rec *store.Container, action events.Action, extra map[string]string) {
	if s.opts.Events == nil {
		return
	}
	attrs := map[string]string{"name": trimSlash(rec.Name)}
	if rec.Config != nil {
		attrs["image"] = rec.Config.Image
		for k, v := range rec.Config.Labels {
			attrs[k] = v
		}
	}
	for k, v := range extra {
		attrs[k] = v
	}
	s.opts.Events.Publish(events.ContainerEventType, action, events.Actor{ID: rec.ID, Attributes: attrs})
}

func trimSlash(name string) string {
	if len(name) > 0 && name[0] == '/' {
		return name[1:]
	}
	return name
}

// ImageUsers returns the ids of the containers created from image id: the
// image service refuses to remove an image in use.
func (s *Service) ImageUsers(imageID string) []string {
	all, err := s.store.List(store.ListOptions{All: true})
	if err != nil {
		return nil
	}
	var ids []string
	for _, c := range all {
		if c.Image == imageID {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

func now() time.Time { return time.Now().UTC() }
