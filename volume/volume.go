// Package volume keeps the engine's volumes, laid out as dockerd's local
// driver lays them out: <root>/<name>/_data holds the data (or is where
// the volume's device is mounted), <root>/<name>/volume.json its record
// (driver, labels, options, creation time). Volumes are referenced by
// containers (Ref/Unref, in memory, rebuilt from the container records
// at start); a referenced volume cannot be removed unless forced.
package volume

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/api/filters"
	"github.com/berth-dev/berth/errdefs"
)

// DefaultDriver is the only driver: dockerd's "local".
const DefaultDriver = "local"

// AnonymousLabel marks a volume made for one container (-v /data, an
// image's VOLUME): dockerd 23+ sets it, and prune removes only those
// unless asked for all.
const AnonymousLabel = "com.docker.volume.anonymous"

// DataDir is the directory under a volume's own one that holds its data.
const DataDir = "_data"

const recordFile = "volume.json"

// namePattern is dockerd's restriction on local volume names.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Volume is one volume's record.
type Volume struct {
	Name      string
	Driver    string
	Labels    map[string]string `json:",omitempty"`
	Options   map[string]string `json:",omitempty"`
	CreatedAt time.Time
}

// Anonymous reports whether v was made for one container.
func (v *Volume) Anonymous() bool {
	_, ok := v.Labels[AnonymousLabel]
	return ok
}

// Store holds the volumes under one root. Safe for concurrent use.
type Store struct {
	root string

	mu      sync.Mutex
	vols    map[string]*Volume
	refs    map[string]map[string]bool // volume -> container ids
	mounted map[string]map[string]bool // volume -> containers that mounted its device
	// owner is the uid and gid new volumes' data dirs get: the remapped
	// root under --userns-remap, as dockerd keeps volumes under it.
	owner [2]int
}

// SetOwner makes the data dirs of volumes created from now on belong to
// uid:gid (a remapped daemon's container root).
func (s *Store) SetOwner(uid, gid int) {
	s.mu.Lock()
	s.owner = [2]int{uid, gid}
	s.mu.Unlock()
}

// Open loads the volumes under root (created if missing).
func Open(root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o701); err != nil {
		return nil, fmt.Errorf("volume store %s: %w", root, err)
	}
	s := &Store{root: root, vols: map[string]*Volume{}, refs: map[string]map[string]bool{}, mounted: map[string]map[string]bool{}}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("volume store %s: %w", root, err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, e.Name(), recordFile))
		if err != nil {
			continue // a volume whose creation did not finish
		}
		var v Volume
		if err := json.Unmarshal(b, &v); err != nil || v.Name != e.Name() {
			continue
		}
		s.vols[v.Name] = &v
	}
	return s, nil
}

// Root is the directory holding the volumes.
func (s *Store) Root() string { return s.root }

// Path is the host directory of v's data (its mount point when it has a
// device).
func (s *Store) Path(name string) string { return filepath.Join(s.root, name, DataDir) }

// ValidName checks a volume name as dockerd's local driver does.
func ValidName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// CreateOptions are a volume create request.
type CreateOptions struct {
	// Name is "" for a generated (64 hex digits) one.
	Name    string
	Driver  string
	Labels  map[string]string
	Options map[string]string
}

// Create makes a volume, or returns the existing one of that name when
// the request does not contradict it (as dockerd: creating an existing
// volume is not an error). ref, when not "", references the volume for
// that container in the same step, so that it cannot be removed between.
func (s *Store) Create(o CreateOptions, ref string) (*Volume, error) {
	if o.Driver == "" {
		o.Driver = DefaultDriver
	}
	if o.Driver != DefaultDriver {
		return nil, fmt.Errorf("error looking up volume plugin %s: plugin %q not found: %w", o.Driver, o.Driver, errdefs.ErrNotFound)
	}
	if o.Name == "" {
		b := make([]byte, 32)
		rand.Read(b)
		o.Name = hex.EncodeToString(b)
	}
	if err := ValidName(o.Name); err != nil {
		return nil, err
	}
	if err := validateOptions(o.Options); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.vols[o.Name]; ok {
		if len(o.Options) > 0 && !maps.Equal(o.Options, v.Options) {
			return nil, fmt.Errorf("volume %s already exists with different options: %w", o.Name, errdefs.ErrConflict)
		}
		s.refLocked(o.Name, ref)
		return clone(v), nil
	}
	v := &Volume{Name: o.Name, Driver: o.Driver, Labels: copyMap(o.Labels), Options: copyMap(o.Options), CreatedAt: time.Now().UTC().Truncate(time.Second)}
	dir := filepath.Join(s.root, v.Name)
	if err := os.MkdirAll(filepath.Join(dir, DataDir), 0o755); err != nil {
		return nil, fmt.Errorf("create volume %s: %w", v.Name, err)
	}
	if s.owner != [2]int{} {
		if err := os.Chown(filepath.Join(dir, DataDir), s.owner[0], s.owner[1]); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("create volume %s: %w", v.Name, err)
		}
	}
	if err := writeRecord(dir, v); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("create volume %s: %w", v.Name, err)
	}
	s.vols[v.Name] = v
	s.refLocked(v.Name, ref)
	return clone(v), nil
}

func writeRecord(dir string, v *Volume) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, recordFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, recordFile))
}

// Get returns the volume called name.
func (s *Store) Get(name string) (*Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		return nil, notFound(name)
	}
	return clone(v), nil
}

func notFound(name string) error {
	return fmt.Errorf("get %s: no such volume: %w", name, errdefs.ErrNotFound)
}

// Ref records that container id uses volume name; it fails when the
// volume does not exist.
func (s *Store) Ref(name, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.vols[name]; !ok {
		return notFound(name)
	}
	s.refLocked(name, id)
	return nil
}

func (s *Store) refLocked(name, id string) {
	if id == "" {
		return
	}
	if s.refs[name] == nil {
		s.refs[name] = map[string]bool{}
	}
	s.refs[name][id] = true
}

// Unref forgets that container id uses volume name.
func (s *Store) Unref(name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refs[name], id)
	if len(s.refs[name]) == 0 {
		delete(s.refs, name)
	}
}

// Users are the containers that reference volume name, sorted.
func (s *Store) Users(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usersLocked(name)
}

func (s *Store) usersLocked(name string) []string {
	var out []string
	for id := range s.refs[name] {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Remove deletes a volume and its data. A volume in use is a conflict,
// even with force (dockerd's force only forgets volumes whose driver is
// gone); force makes a missing volume not an error.
func (s *Store) Remove(name string, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.vols[name]; !ok {
		if force {
			return nil
		}
		return notFound(name)
	}
	if users := s.usersLocked(name); len(users) > 0 {
		return fmt.Errorf("remove %s: volume is in use - %v: %w", name, users, errdefs.ErrConflict)
	}
	return s.removeLocked(name)
}

func (s *Store) removeLocked(name string) error {
	dir := filepath.Join(s.root, name)
	data := filepath.Join(dir, DataDir)
	if isMountPoint(data) {
		if err := unix.Unmount(data, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("remove %s: unmount %s: %w", name, data, err)
		}
		delete(s.mounted, name)
	}
	// The record goes first: a crash halfway leaves a directory Open
	// ignores, never a record without its data.
	if err := os.Remove(filepath.Join(dir, recordFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	delete(s.vols, name)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// ListFilters are the filters of `volume ls`.
var ListFilters = []string{"dangling", "driver", "label", "name"}

// List returns the volumes that pass f (dangling, driver, label, name),
// sorted by name.
func (s *Store) List(f filters.Args) ([]*Volume, error) {
	if err := f.Validate(ListFilters...); err != nil {
		return nil, err
	}
	dangling, err := f.Bool("dangling")
	if err != nil {
		return nil, fmt.Errorf("invalid filter 'dangling=%s': %w", f.Get("dangling")[0], errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Volume
	for name, v := range s.vols {
		if dangling != nil && (len(s.refs[name]) == 0) != *dangling {
			continue
		}
		if !f.FuzzyMatch("name", name) && !containsAny(name, f.Get("name")) {
			continue
		}
		if !f.ExactMatch("driver", v.Driver) || !f.MatchKVList("label", v.Labels) {
			continue
		}
		out = append(out, clone(v))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// containsAny is dockerd's name filter: a substring match.
func containsAny(name string, subs []string) bool {
	for _, s := range subs {
		if s != "" && strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// PruneFilters are the filters of `volume prune`.
var PruneFilters = []string{"all", "label", "label!"}

// Prune removes the volumes no container references that pass f: only
// anonymous ones unless all (API 1.42+, as dockerd; older clients get
// every unused volume, all=true). It returns their names and the space
// they took.
func (s *Store) Prune(f filters.Args, all bool) ([]string, uint64, error) {
	if err := f.Validate(PruneFilters...); err != nil {
		return nil, 0, err
	}
	if a, err := f.Bool("all"); err != nil {
		return nil, 0, err
	} else if a != nil {
		all = *a
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for name, v := range s.vols {
		if len(s.refs[name]) > 0 || (!all && !v.Anonymous()) {
			continue
		}
		if !f.MatchKVList("label", v.Labels) {
			continue
		}
		if f.Has("label!") && !notLabels(f.Get("label!"), v.Labels) {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var done []string
	var space uint64
	for _, name := range names {
		size := DirSize(filepath.Join(s.root, name, DataDir))
		if err := s.removeLocked(name); err != nil {
			return done, space, err
		}
		done = append(done, name)
		space += uint64(size)
	}
	return done, space, nil
}

// notLabels is label!: true when v has none of the given labels (k or
// k=v).
func notLabels(vals []string, labels map[string]string) bool {
	for _, l := range vals {
		f := filters.Args{}
		f.Add("label", l)
		if f.MatchKVList("label", labels) {
			return false
		}
	}
	return true
}

// DirSize is the space the files under dir take as dockerd counts it:
// every non-directory's size, hard links once.
func DirSize(dir string) int64 {
	var n int64
	seen := map[uint64]bool{}
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		n += fi.Size()
		return nil
	})
	return n
}

func clone(v *Volume) *Volume {
	c := *v
	c.Labels, c.Options = copyMap(v.Labels), copyMap(v.Options)
	return &c
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
