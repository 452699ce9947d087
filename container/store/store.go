package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/berth-dev/berth/container/names"
	"github.com/berth-dev/berth/errdefs"
)

// removingPrefix marks a container directory being deleted: Delete first
// renames the directory (one atomic step that makes the record vanish),
// then removes it; Open finishes what a crash interrupted.
const removingPrefix = ".removing-"

var validID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Problem is a container directory Open could not load. The daemon keeps
// running without it and reports it.
type Problem struct {
	Dir string
	Err error
}

func (p Problem) Error() string { return fmt.Sprintf("container record %s: %v", p.Dir, p.Err) }

// Store holds the container records under one root. It is safe for
// concurrent use. Records handed out are copies: change one with Update.
type Store struct {
	root string

	mu    sync.RWMutex
	byID  map[string]*entry
	names map[string]string // "/name" -> id; reserved names too
}

type entry struct {
	// mu serializes writes of this record: its file is rewritten whole.
	mu sync.Mutex
	c  *Container
}

// Open loads every record under root (created if missing). Records that
// cannot be read are skipped and returned as problems, so that one bad
// record does not keep the daemon down.
func Open(root string) (*Store, []Problem, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, nil, fmt.Errorf("container store %s: %w", root, err)
	}
	s := &Store{root: root, byID: map[string]*entry{}, names: map[string]string{}}
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, fmt.Errorf("container store %s: %w", root, err)
	}
	var problems []Problem
	for _, d := range dirs {
		dir := filepath.Join(root, d.Name())
		if strings.HasPrefix(d.Name(), removingPrefix) {
			if err := os.RemoveAll(dir); err != nil {
				problems = append(problems, Problem{dir, fmt.Errorf("finish removal: %w", err)})
			}
			continue
		}
		if !d.IsDir() {
			continue
		}
		c, err := load(dir)
		if err != nil {
			problems = append(problems, Problem{dir, err})
			continue
		}
		if c.ID != d.Name() {
			problems = append(problems, Problem{dir, fmt.Errorf("record id %q does not match its directory: %w", c.ID, errdefs.ErrFailedPrecondition)})
			continue
		}
		if other, taken := s.names[c.Name]; taken {
			problems = append(problems, Problem{dir, fmt.Errorf("name %s is also used by container %s: %w", c.Name, other, errdefs.ErrConflict)})
			continue
		}
		s.byID[c.ID] = &entry{c: c}
		s.names[c.Name] = c.ID
	}
	return s, problems, nil
}

func load(dir string) (*Container, error) {
	// Leftover temp files are records that were never committed.
	if tmps, err := filepath.Glob(filepath.Join(dir, tmpPrefix+"*")); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, RecordFile))
	if err != nil {
		return nil, err
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode %s: %w", RecordFile, err)
	}
	if !validID.MatchString(c.ID) || c.Name == "" || c.Config == nil || c.HostConfig == nil {
		return nil, fmt.Errorf("%s is incomplete (id %q, name %q): %w", RecordFile, c.ID, c.Name, errdefs.ErrFailedPrecondition)
	}
	return &c, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Dir is the directory of container id: its record, logs and the files
// the engine bind-mounts into it.
func (s *Store) Dir(id string) string { return filepath.Join(s.root, id) }

func conflict(name, id string) error {
	return fmt.Errorf("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.: %w", name, id, errdefs.ErrConflict)
}

// Create stores a new record and creates its directory. The name is
// reserved atomically: of two creates with one name, exactly one succeeds
// and the other gets dockerd's Conflict error. An empty c.Name gets a
// generated one. c is updated with the stored name.
func (s *Store) Create(c *Container) error {
	if !validID.MatchString(c.ID) {
		return fmt.Errorf("container id %q: not 64 hex digits: %w", c.ID, errdefs.ErrInvalidArgument)
	}
	if c.Config == nil || c.HostConfig == nil {
		return fmt.Errorf("container %s: config and host config are required: %w", c.ID, errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	if _, ok := s.byID[c.ID]; ok {
		s.mu.Unlock()
		return fmt.Errorf("container %s: %w", c.ID, errdefs.ErrAlreadyExists)
	}
	if c.Name == "" {
		c.Name = "/" + names.Generate(func(n string) bool { _, taken := s.names["/"+n]; return taken })
	} else {
		n, err := names.Validate(c.Name)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		c.Name = n
		if other, taken := s.names[n]; taken {
			s.mu.Unlock()
			return conflict(n, other)
		}
	}
	s.names[c.Name] = c.ID
	s.mu.Unlock()

	rec := clone(c)
	// A --rm container need not outlive a reboot (dockerd removes it at
	// its next start; its rootfs is not synced either): its record is
	// written without the fsyncs.
	durable := !c.HostConfig.AutoRemove
	err := func() error {
		if err := os.Mkdir(s.Dir(c.ID), 0o700); err != nil {
			return fmt.Errorf("create container %s: %w", c.ID, err)
		}
		if durable {
			if err := syncDir(s.root); err != nil {
				return err
			}
		}
		return s.write(rec, durable)
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.names, c.Name)
		os.RemoveAll(s.Dir(c.ID))
		return err
	}
	s.byID[c.ID] = &entry{c: rec}
	return nil
}

// write replaces c's record; durable waits until it is on disk.
func (s *Store) write(c *Container, durable bool) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode container %s: %w", c.ID, err)
	}
	path := filepath.Join(s.Dir(c.ID), RecordFile)
	if !durable {
		return replaceFile(path, b)
	}
	return writeFileAtomic(path, b)
}

// clone deep-copies a record, so that callers never share maps or slices
// with the store.
func clone(c *Container) *Container {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("store: encode container %s: %v", c.ID, err))
	}
	var out Container
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("store: decode container %s: %v", c.ID, err))
	}
	return &out
}

// Get finds a container by full id, name (with or without its slash) or
// unique id prefix, in that order, as dockerd does, and returns a copy.
func (s *Store) Get(ref string) (*Container, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, err := s.lookup(ref)
	if err != nil {
		return nil, err
	}
	return clone(e.c), nil
}

func (s *Store) lookup(ref string) (*entry, error) {
	if ref == "" {
		return nil, fmt.Errorf("No such container: %s: %w", ref, errdefs.ErrNotFound)
	}
	if e, ok := s.byID[ref]; ok {
		return e, nil
	}
	if id, ok := s.names["/"+strings.TrimPrefix(ref, "/")]; ok {
		if e, ok := s.byID[id]; ok {
			return e, nil
		}
	}
	var found *entry
	for id, e := range s.byID {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, fmt.Errorf("Multiple IDs found with provided prefix: %s: %w", ref, errdefs.ErrInvalidArgument)
			}
			found = e
		}
	}
	if found == nil {
		return nil, fmt.Errorf("No such container: %s: %w", ref, errdefs.ErrNotFound)
	}
	return found, nil
}

// Update changes the record of ref with fn and persists it. Updates of one
// container are serialized; fn works on a copy, so an error from fn (or
// from the write) leaves the stored record as it was. Id and name cannot
// be changed here (use Rename).
func (s *Store) Update(ref string, fn func(c *Container) error) (*Container, error) {
	return s.update(ref, fn, true)
}

// SetState is Update for changes of the run state only (started, exited,
// paused, restarting, health, and the removal of a --rm container that
// ran): they are written atomically but not synced to disk. A kill of berthd loses nothing (the page cache
// survives it); after a power loss no container is running anyway and
// restore finds the shims gone, whichever state the record had. That
// keeps two fsyncs off every start and every exit.
func (s *Store) SetState(ref string, fn func(c *Container) error) (*Container, error) {
	return s.update(ref, fn, false)
}

func (s *Store) update(ref string, fn func(c *Container) error, durable bool) (*Container, error) {
	s.mu.RLock()
	e, err := s.lookup(ref)
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s.mu.RLock()
	c := clone(e.c)
	s.mu.RUnlock()
	id, name := c.ID, c.Name
	if err := fn(c); err != nil {
		return nil, err
	}
	c.ID, c.Name = id, name
	if err := s.write(c, durable); err != nil {
		return nil, err
	}
	s.mu.Lock()
	e.c = c
	s.mu.Unlock()
	return clone(c), nil
}

// Rename gives the container ref a new name, with dockerd's checks and
// messages.
func (s *Store) Rename(ref, newName string) error {
	if ref == "" || newName == "" {
		return fmt.Errorf("Neither old nor new names may be empty: %w", errdefs.ErrInvalidArgument)
	}
	n, err := names.Validate(newName)
	if err != nil {
		return err
	}
	s.mu.Lock()
	e, err := s.lookup(ref)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	old := e.c.Name
	if old == n {
		s.mu.Unlock()
		return fmt.Errorf("Renaming a container with the same name as its current name: %w", errdefs.ErrInvalidArgument)
	}
	if other, taken := s.names[n]; taken {
		s.mu.Unlock()
		return conflict(n, other)
	}
	s.names[n] = e.c.ID
	s.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	c := clone(e.c)
	c.Name = n
	err = s.write(c, true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.names, n)
		return err
	}
	delete(s.names, old)
	e.c = c
	return nil
}

// Delete removes the container's record and directory. The directory is
// first renamed out of the way, so that a crash mid-removal never leaves
// a half record that Open would load. The rename is synced unless the
// record is marked RemovalInProgress (durably, by Update): a power loss
// that undoes it then brings back a record that restore removes again.
func (s *Store) Delete(ref string) error {
	s.mu.Lock()
	e, err := s.lookup(ref)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	id, name, marked := e.c.ID, e.c.Name, e.c.State.RemovalInProgress
	gone := filepath.Join(s.root, removingPrefix+id)
	if err := os.Rename(s.Dir(id), gone); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.mu.Unlock()
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	delete(s.byID, id)
	delete(s.names, name)
	s.mu.Unlock()
	if !marked {
		if err := syncDir(s.root); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// NameInUse reports whether a name ("x" or "/x") is taken.
func (s *Store) NameInUse(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.names["/"+strings.TrimPrefix(name, "/")]
	return ok
}

// all returns copies of every record, newest first.
func (s *Store) all() []*Container {
	s.mu.RLock()
	out := make([]*Container, 0, len(s.byID))
	for _, e := range s.byID {
		out = append(out, clone(e.c))
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}
