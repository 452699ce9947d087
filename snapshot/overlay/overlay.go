// Package overlay is the overlayfs Snapshotter: every snapshot is a
// directory, committed snapshots are stacked as overlay lower layers, and an
// active snapshot adds an upper and a work directory.
//
// On-disk layout under the root directory:
//
//	lock                   flock(2)ed while a Snapshotter has the root open
//	snapshots/<id>/        one directory per snapshot; its existence is the record
//	snapshots/<id>/info.json   the record: kind, name, parent, labels, usage
//	snapshots/<id>/fs      the layer's files (the upper dir of an active snapshot)
//	snapshots/<id>/work    overlay's work dir (active snapshots only)
//	staging/<id>           a snapshot being made: renamed into snapshots/ when complete
//	trash/<id>             a removed snapshot: renamed out of snapshots/, then deleted
//
// Crash safety: every change of the set of snapshots is one rename(2)
// followed by an fsync of the directories involved: making a snapshot
// renames its complete directory (record included) from staging/ into
// snapshots/; removing renames it to trash/; commit and label updates
// replace info.json by a fsynced temporary file. The record and the data
// live in one directory and move together, so a crash can never leave a
// record that points at nothing, nor data that a record points at
// half-made. What a crash can leave behind — entries in staging/ and
// trash/, a stray info.json.tmp — has no record and is deleted by
// Cleanup.
//
// Snapshot IDs are small integers so that overlay option strings stay
// short; Mount copes with chains too long for one page anyway.
package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/atomicfile"
	"github.com/berth-dev/berth/snapshot"
)

// record is one snapshot's info.json.
type record struct {
	ID      string            `json:"id"`
	Kind    snapshot.Kind     `json:"kind"`
	Name    string            `json:"name"`
	Parent  string            `json:"parent,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	Updated time.Time         `json:"updated"`
	// Usage is recorded when the snapshot is committed.
	Usage *snapshot.Usage `json:"usage,omitempty"`
}

func (r *record) info() snapshot.Info {
	info := snapshot.Info{Kind: r.Kind, Name: r.Name, Parent: r.Parent, Created: r.Created, Updated: r.Updated}
	if len(r.Labels) > 0 {
		info.Labels = make(map[string]string, len(r.Labels))
		for k, v := range r.Labels {
			info.Labels[k] = v
		}
	}
	return info
}

// Snapshotter is the overlay implementation of snapshot.Snapshotter.
type Snapshotter struct {
	root string
	lock *os.File
	// index is whether overlay knows the index option (it is then
	// turned off: layers are shared between mounts).
	index bool

	mu      sync.Mutex // guards everything below, and every change on disk
	records map[string]*record
	nextID  uint64
	closed  bool

	// trashing counts the deletions of removed snapshots' data still
	// running in the background.
	trashing sync.WaitGroup
}

var (
	_ snapshot.Snapshotter = (*Snapshotter)(nil)
	_ snapshot.Cleaner     = (*Snapshotter)(nil)
)

// testHookCrash, when set, is called at the named points of an operation;
// an error makes the operation stop right there, leaving the disk as a
// crash would. Tests use it.
var testHookCrash func(point string) error

func crashPoint(point string) error {
	if testHookCrash != nil {
		return testHookCrash(point)
	}
	return nil
}

// New opens (creating it if needed) the snapshotter rooted at root. Only
// one Snapshotter can have a root open at a time. It does not delete
// leftovers of a crash; call Cleanup for that.
func New(root string) (*Snapshotter, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{root, filepath.Join(root, "snapshots"), filepath.Join(root, "staging"), filepath.Join(root, "trash")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("overlay snapshotter: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(root, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("overlay snapshotter: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("overlay snapshotter: root %q is in use: %w", root, err)
	}
	s := &Snapshotter{root: root, lock: lock, records: map[string]*record{}, nextID: 1}
	if _, err := os.Stat("/sys/module/overlay/parameters/index"); err == nil {
		s.index = true
	}
	if err := s.load(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("overlay snapshotter %q: %w", root, err)
	}
	return s, nil
}

// load reads every record and checks that parents exist.
func (s *Snapshotter) load() error {
	ents, err := os.ReadDir(filepath.Join(s.root, "snapshots"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.root, "snapshots", e.Name(), "info.json"))
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", e.Name(), err)
		}
		r := &record{}
		if err := json.Unmarshal(b, r); err != nil {
			return fmt.Errorf("snapshot %s: info.json: %w", e.Name(), err)
		}
		if r.ID != e.Name() {
			return fmt.Errorf("snapshot %s: info.json names id %q", e.Name(), r.ID)
		}
		if _, dup := s.records[r.Name]; dup {
			return fmt.Errorf("snapshot %s: name %q used twice", e.Name(), r.Name)
		}
		s.records[r.Name] = r
	}
	for _, r := range s.records {
		if r.Parent != "" {
			if p := s.records[r.Parent]; p == nil || p.Kind != snapshot.KindCommitted {
				return fmt.Errorf("snapshot %q (%s): parent %q is missing", r.Name, r.ID, r.Parent)
			}
		}
	}
	// IDs are never reused while a directory still carries them.
	for _, d := range []string{"snapshots", "staging", "trash"} {
		ents, _ := os.ReadDir(filepath.Join(s.root, d))
		for _, e := range ents {
			if n, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && n >= s.nextID {
				s.nextID = n + 1
			}
		}
	}
	return nil
}

// Close releases the root. Snapshots stay on disk.
func (s *Snapshotter) Close() error {
	s.trashing.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.lock.Close()
}

func (s *Snapshotter) dir(id string) string { return filepath.Join(s.root, "snapshots", id) }

// Stat returns the information of the snapshot key.
func (s *Snapshotter) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.get(key)
	if err != nil {
		return snapshot.Info{}, err
	}
	return r.info(), nil
}

// get looks key up; s.mu is held.
func (s *Snapshotter) get(key string) (*record, error) {
	if s.closed {
		return nil, fmt.Errorf("overlay snapshotter is closed: %w", errdefs.ErrFailedPrecondition)
	}
	r := s.records[key]
	if r == nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	return r, nil
}

// Update changes the labels of a snapshot.
func (s *Snapshotter) Update(ctx context.Context, info snapshot.Info, fieldpaths ...string) (snapshot.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.get(info.Name)
	if err != nil {
		return snapshot.Info{}, err
	}
	labels := map[string]string{}
	if len(fieldpaths) == 0 {
		for k, v := range info.Labels {
			labels[k] = v
		}
	} else {
		for k, v := range r.Labels {
			labels[k] = v
		}
		for _, p := range fieldpaths {
			name, ok := strings.CutPrefix(p, "labels.")
			switch {
			case p == "labels":
				labels = map[string]string{}
				for k, v := range info.Labels {
					labels[k] = v
				}
			case ok && name != "":
				if v, set := info.Labels[name]; set {
					labels[name] = v
				} else {
					delete(labels, name)
				}
			default:
				return snapshot.Info{}, fmt.Errorf("update snapshot %q: field %q cannot be changed: %w", info.Name, p, errdefs.ErrInvalidArgument)
			}
		}
	}
	n := *r
	n.Labels = labels
	n.Updated = time.Now().UTC()
	if err := s.writeRecord(s.dir(r.ID), &n, true); err != nil {
		return snapshot.Info{}, fmt.Errorf("update snapshot %q: %w", info.Name, err)
	}
	*r = n
	return r.info(), nil
}

// Usage returns the disk space used by the snapshot itself.
func (s *Snapshotter) Usage(ctx context.Context, key string) (snapshot.Usage, error) {
	s.mu.Lock()
	r, err := s.get(key)
	var (
		id   string
		kind snapshot.Kind
		u    *snapshot.Usage
	)
	if err == nil {
		id, kind, u = r.ID, r.Kind, r.Usage
	}
	s.mu.Unlock()
	if err != nil {
		return snapshot.Usage{}, err
	}
	if kind == snapshot.KindCommitted && u != nil {
		return *u, nil
	}
	return diskUsage(ctx, filepath.Join(s.dir(id), "fs"))
}

// diskUsage counts the allocated bytes and distinct inodes under dir.
func diskUsage(ctx context.Context, dir string) (snapshot.Usage, error) {
	var u snapshot.Usage
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		u.Inodes++
		u.Size += st.Blocks * 512
		return nil
	})
	if err != nil {
		return snapshot.Usage{}, fmt.Errorf("disk usage of %q: %w", dir, err)
	}
	return u, nil
}

// Mounts returns the mounts of the snapshot key.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]snapshot.Mount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.get(key)
	if err != nil {
		return nil, err
	}
	return s.mounts(r), nil
}

// mounts builds the mounts of r; s.mu is held.
//
//   - active, no parent: a writable bind of fs
//   - active on a chain: overlay with the chain as lowerdir (newest first),
//     fs as upperdir
//   - view of one layer, or a committed layer with no parent: a read-only
//     bind of that layer's fs
//   - view or committed snapshot on a longer chain: a read-only overlay
//     of lower dirs only
func (s *Snapshotter) mounts(r *record) []snapshot.Mount {
	var lowers []string
	if r.Kind == snapshot.KindCommitted {
		lowers = append(lowers, filepath.Join(s.dir(r.ID), "fs"))
	}
	for p := r.Parent; p != ""; p = s.records[p].Parent {
		lowers = append(lowers, filepath.Join(s.dir(s.records[p].ID), "fs"))
	}
	if r.Kind == snapshot.KindActive {
		upper := filepath.Join(s.dir(r.ID), "fs")
		if len(lowers) == 0 {
			return []snapshot.Mount{{Type: "bind", Source: upper, Options: []string{"rw", "rbind"}}}
		}
		return []snapshot.Mount{{Type: "overlay", Source: "overlay", Options: append(s.overlayOptions(),
			"lowerdir="+strings.Join(lowers, ":"),
			"upperdir="+upper,
			"workdir="+filepath.Join(s.dir(r.ID), "work"))}}
	}
	switch len(lowers) {
	case 0: // a view of nothing: its own empty fs
		return []snapshot.Mount{{Type: "bind", Source: filepath.Join(s.dir(r.ID), "fs"), Options: []string{"ro", "rbind"}}}
	case 1:
		return []snapshot.Mount{{Type: "bind", Source: lowers[0], Options: []string{"ro", "rbind"}}}
	}
	return []snapshot.Mount{{Type: "overlay", Source: "overlay", Options: append(append([]string{"ro"}, s.overlayOptions()...),
		"lowerdir="+strings.Join(lowers, ":"))}}
}

func (s *Snapshotter) overlayOptions() []string {
	if s.index {
		return []string{"index=off"}
	}
	return nil
}

// Prepare makes the active snapshot key on parent.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return s.create(ctx, snapshot.KindActive, key, parent, opts)
}

// View makes the read-only snapshot key of parent.
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return s.create(ctx, snapshot.KindView, key, parent, opts)
}

func (s *Snapshotter) create(ctx context.Context, kind snapshot.Kind, key, parent string, opts []snapshot.Opt) ([]snapshot.Mount, error) {
	op := "prepare"
	if kind == snapshot.KindView {
		op = "view"
	}
	fail := func(err error) ([]snapshot.Mount, error) {
		return nil, fmt.Errorf("%s snapshot %q on %q: %w", op, key, parent, err)
	}
	if key == "" {
		return fail(fmt.Errorf("empty key: %w", errdefs.ErrInvalidArgument))
	}
	info := snapshot.Info{}
	for _, o := range opts {
		if err := o(&info); err != nil {
			return fail(err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fail(fmt.Errorf("closed: %w", errdefs.ErrFailedPrecondition))
	}
	if _, ok := s.records[key]; ok {
		return fail(errdefs.ErrAlreadyExists)
	}
	if parent != "" {
		p, ok := s.records[parent]
		if !ok {
			return fail(fmt.Errorf("parent: %w", errdefs.ErrNotFound))
		}
		if p.Kind != snapshot.KindCommitted {
			return fail(fmt.Errorf("parent is %s, not committed: %w", p.Kind, errdefs.ErrInvalidArgument))
		}
	}
	now := time.Now().UTC()
	r := &record{ID: strconv.FormatUint(s.nextID, 10), Kind: kind, Name: key, Parent: parent,
		Labels: info.Labels, Created: now, Updated: now}
	s.nextID++

	staging := filepath.Join(s.root, "staging", r.ID)
	if err := s.makeDir(staging, r, !info.Volatile); err != nil {
		_ = os.RemoveAll(staging)
		return fail(err)
	}
	if err := crashPoint("create:staged"); err != nil {
		return fail(err)
	}
	if err := os.Rename(staging, s.dir(r.ID)); err != nil {
		_ = os.RemoveAll(staging)
		return fail(err)
	}
	if !info.Volatile {
		if err := syncDir(filepath.Join(s.root, "snapshots")); err != nil {
			// The snapshot exists on disk; keep the record consistent with it.
			s.records[key] = r
			return fail(err)
		}
	}
	s.records[key] = r
	return s.mounts(r), nil
}

// makeDir fills a new snapshot directory: fs, work for an active
// snapshot, and info.json, all fsynced if sync.
func (s *Snapshotter) makeDir(dir string, r *record, sync bool) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, "fs"), 0o755); err != nil {
		return err
	}
	if r.Kind == snapshot.KindActive {
		if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
			return err
		}
	}
	// writeRecord ends with an fsync of dir, after fs, work and info.json
	// are all in it: that one fsync makes the whole directory durable
	// before create renames it into snapshots/.
	return s.writeRecord(dir, r, sync)
}

// writeRecord replaces dir/info.json atomically: temp file, fsync,
// rename, fsync of dir (without the fsyncs unless sync).
func (s *Snapshotter) writeRecord(dir string, r *record, sync bool) error {
	b, err := json.MarshalIndent(r, "", "\t")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "info.json.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = crashPoint("record:written")
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "info.json"))
	}
	if err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	if !sync {
		return nil
	}
	return syncDir(dir)
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }

// Commit turns the active snapshot key into the committed snapshot name.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
	fail := func(err error) error { return fmt.Errorf("commit snapshot %q as %q: %w", key, name, err) }
	if name == "" {
		return fail(fmt.Errorf("empty name: %w", errdefs.ErrInvalidArgument))
	}
	// Measure the layer before taking the lock: it walks the whole tree.
	s.mu.Lock()
	r, err := s.get(key)
	var (
		id   string
		kind snapshot.Kind
	)
	if err == nil {
		id, kind = r.ID, r.Kind
	}
	s.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	if kind != snapshot.KindActive {
		return fail(fmt.Errorf("snapshot is %s, not active: %w", kind, errdefs.ErrFailedPrecondition))
	}
	usage, err := diskUsage(ctx, filepath.Join(s.dir(id), "fs"))
	if err != nil {
		return fail(err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, err := s.get(key); err != nil {
		return fail(err)
	} else if cur != r {
		return fail(fmt.Errorf("snapshot changed during commit: %w", errdefs.ErrFailedPrecondition))
	}
	if _, ok := s.records[name]; ok {
		return fail(errdefs.ErrAlreadyExists)
	}
	n := *r
	n.Kind, n.Name, n.Usage = snapshot.KindCommitted, name, &usage
	info := r.info() // labels carry over; opts add to them
	for _, o := range opts {
		if err := o(&info); err != nil {
			return fail(err)
		}
	}
	n.Labels = info.Labels
	n.Updated = time.Now().UTC()
	if err := s.writeRecord(s.dir(r.ID), &n, true); err != nil {
		return fail(err)
	}
	delete(s.records, key)
	*r = n
	s.records[name] = r
	return nil
}

// Remove deletes the snapshot key: its directory is renamed to trash/ (the
// commit point), then deleted in the background: a removal (the end of
// every `run --rm`) need not wait for its files to go.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	fail := func(err error) error { return fmt.Errorf("remove snapshot %q: %w", key, err) }
	s.mu.Lock()
	r, err := s.get(key)
	if err != nil {
		s.mu.Unlock()
		return fail(err)
	}
	var children []string
	for _, c := range s.records {
		if c.Parent == key {
			children = append(children, c.Name)
		}
	}
	if len(children) > 0 {
		s.mu.Unlock()
		sort.Strings(children)
		return fail(fmt.Errorf("it is the parent of %q: %w", children, errdefs.ErrFailedPrecondition))
	}
	trash := filepath.Join(s.root, "trash", r.ID)
	if err := os.Rename(s.dir(r.ID), trash); err != nil {
		s.mu.Unlock()
		return fail(err)
	}
	delete(s.records, key)
	// A layer's removal is made durable. A container's (active or view)
	// is not: its owner recorded the removal before asking for it and
	// finishes it after a power loss brings the snapshot back (berthd
	// removes container snapshots without a container at start), and a
	// filesystem that journals its metadata in order never keeps the
	// deletion of its files without the rename before them. That is an
	// fsync less at the end of every `run --rm`.
	if r.Kind == snapshot.KindCommitted {
		err = syncDir(filepath.Join(s.root, "snapshots"))
	}
	s.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	if err := crashPoint("remove:trashed"); err != nil {
		return fail(err)
	}
	// The snapshot is gone; if deleting its data fails (still mounted),
	// Cleanup retries later.
	s.trashing.Go(func() { _ = os.RemoveAll(trash) })
	return nil
}

// Walk calls fn for every snapshot in order of name.
func (s *Snapshotter) Walk(ctx context.Context, fn snapshot.WalkFunc) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("overlay snapshotter is closed: %w", errdefs.ErrFailedPrecondition)
	}
	infos := make([]snapshot.Info, 0, len(s.records))
	for _, r := range s.records {
		infos = append(infos, r.info())
	}
	s.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// Cleanup deletes what a crash left behind: half-made snapshots in
// staging/, removed ones in trash/, and temporary record files. It never
// touches a snapshot that has a record. Entries that cannot be deleted
// (still mounted) are reported and left for the next Cleanup.
func (s *Snapshotter) Cleanup(ctx context.Context) error {
	s.trashing.Wait() // not two deletions of one directory at once
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("overlay snapshotter is closed: %w", errdefs.ErrFailedPrecondition)
	}
	var errs []error
	for _, d := range []string{"staging", "trash"} {
		ents, err := os.ReadDir(filepath.Join(s.root, d))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := os.RemoveAll(filepath.Join(s.root, d, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, r := range s.records {
		tmp := filepath.Join(s.dir(r.ID), "info.json.tmp")
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("overlay snapshotter cleanup: %w", err)
	}
	return nil
}
