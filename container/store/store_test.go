package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/errdefs"
)

func newID(t testing.TB) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func newContainer(t testing.TB, name string) *Container {
	return &Container{
		ID: newID(t), Name: name, Created: time.Now().UTC(),
		Path: "sh", Args: []string{"-c", "true"},
		Config:     &container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "true"}, Labels: map[string]string{}},
		HostConfig: &container.HostConfig{NetworkMode: "default"},
		Image:      "sha256:" + strings.Repeat("ab", 32),
		Driver:     "overlay2",
	}
}

func openStore(t testing.TB, root string) *Store {
	t.Helper()
	s, problems, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("unexpected problem: %v", p)
	}
	return s
}

func TestCreateGetLookup(t *testing.T) {
	s := openStore(t, t.TempDir())
	a := newContainer(t, "web")
	if err := s.Create(a); err != nil {
		t.Fatal(err)
	}
	if a.Name != "/web" {
		t.Fatalf("stored name %q, want /web", a.Name)
	}
	for _, ref := range []string{a.ID, "web", "/web", a.ID[:12], a.ID[:1]} {
		got, err := s.Get(ref)
		if err != nil || got.ID != a.ID {
			t.Errorf("Get(%q) = %v, %v", ref, got, err)
		}
	}
	_, err := s.Get("nosuch")
	if !errdefs.IsNotFound(err) || !strings.HasPrefix(err.Error(), "No such container: nosuch") {
		t.Errorf("Get(nosuch) = %v, want dockerd's NotFound", err)
	}
	// A name wins over an id prefix it looks like.
	b := newContainer(t, a.ID[:6])
	if err := s.Create(b); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(a.ID[:6]); got == nil || got.ID != b.ID {
		t.Errorf("Get(%q) should find the container named so", a.ID[:6])
	}
	// The returned record is a copy.
	got, _ := s.Get("web")
	got.Config.Labels["x"] = "y"
	if again, _ := s.Get("web"); again.Config.Labels["x"] != "" {
		t.Error("changing a returned record changed the store")
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	s := openStore(t, t.TempDir())
	a, b := newContainer(t, "a1"), newContainer(t, "b1")
	a.ID = "abc" + a.ID[3:]
	b.ID = "abd" + b.ID[3:]
	for _, c := range []*Container{a, b} {
		if err := s.Create(c); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Get("ab")
	if !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), "Multiple IDs found with provided prefix: ab") {
		t.Fatalf("Get(ab) = %v, want the ambiguous-prefix error", err)
	}
	if got, err := s.Get("abc"); err != nil || got.ID != a.ID {
		t.Fatalf("Get(abc) = %v, %v", got, err)
	}
}

func TestCreateValidates(t *testing.T) {
	s := openStore(t, t.TempDir())
	c := newContainer(t, "bad/x")
	err := s.Create(c)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "Invalid container name (bad/x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed") {
		t.Fatalf("Create(bad/x) = %v", err)
	}
	c = newContainer(t, "ok")
	c.ID = "XYZ"
	if err := s.Create(c); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Create with id XYZ = %v, want InvalidArgument", err)
	}
	if s.NameInUse("ok") {
		t.Fatal("a failed create left its name reserved")
	}
	// Generated names are unique and valid.
	c = newContainer(t, "")
	if err := s.Create(c); err != nil || !strings.Contains(c.Name, "_") {
		t.Fatalf("generated name %q: %v", c.Name, err)
	}
}

func TestConcurrentCreateOneName(t *testing.T) {
	s := openStore(t, t.TempDir())
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	cs := make([]*Container, n)
	for i := range n {
		cs[i] = newContainer(t, "xx")
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Create(cs[i]) }()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("two creates with name xx succeeded: %d and %d", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no create succeeded")
	}
	want := `Conflict. The container name "/xx" is already in use by container "` + cs[winner].ID + `". You have to remove (or rename) that container to be able to reuse that name.`
	for i, err := range errs {
		if i == winner {
			continue
		}
		if !errdefs.IsConflict(err) || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("losing create: %v\nwant %s", err, want)
		}
		if _, err := os.Stat(s.Dir(cs[i].ID)); !os.IsNotExist(err) {
			t.Fatalf("losing create left its directory: %v", err)
		}
	}
}

func TestReopenAndBadRecords(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	good := newContainer(t, "good")
	good.State = State{Running: true, Pid: 42, StartedAt: time.Now().UTC()}
	if err := s.Create(good); err != nil {
		t.Fatal(err)
	}
	// A record that is not JSON, one that is truncated, a directory
	// without record, a leftover temp file and an interrupted removal.
	bad := newID(t)
	os.MkdirAll(filepath.Join(root, bad), 0o700)
	os.WriteFile(filepath.Join(root, bad, RecordFile), []byte("{not json"), 0o600)
	other := newContainer(t, "trunc")
	if err := s.Create(other); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(root, other.ID, RecordFile))
	os.WriteFile(filepath.Join(root, other.ID, RecordFile), b[:len(b)/2], 0o600)
	empty := newID(t)
	os.MkdirAll(filepath.Join(root, empty), 0o700)
	tmp := filepath.Join(root, good.ID, tmpPrefix+RecordFile+"-123")
	os.WriteFile(tmp, []byte("{half"), 0o600)
	removing := filepath.Join(root, removingPrefix+newID(t))
	os.MkdirAll(filepath.Join(removing, "sub"), 0o700)

	s2, problems, err := Open(root)
	if err != nil {
		t.Fatalf("Open must not fail on bad records: %v", err)
	}
	if len(problems) != 3 {
		t.Fatalf("problems %v, want 3 (bad json, truncated, no record)", problems)
	}
	got, err := s2.Get("good")
	if err != nil || got.State.Pid != 42 || !got.State.Running || got.State.Status() != container.StateRunning {
		t.Fatalf("reloaded record %+v, %v", got, err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Error("leftover temp record not removed")
	}
	if _, err := os.Stat(removing); !os.IsNotExist(err) {
		t.Error("interrupted removal not finished")
	}
}

func TestUpdateRenameDelete(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	a, b := newContainer(t, "a1"), newContainer(t, "b1")
	s.Create(a)
	s.Create(b)
	c, err := s.Update("a1", func(c *Container) error {
		c.State.Running, c.State.Pid = true, 7
		c.Name = "/sneaky" // ignored: rename is separate
		return nil
	})
	if err != nil || c.State.Pid != 7 || c.Name != "/a1" {
		t.Fatalf("Update = %+v, %v", c, err)
	}
	if _, err := s.Update("a1", func(c *Container) error { c.State.Pid = 9; return errors.New("boom") }); err == nil {
		t.Fatal("Update's fn error was lost")
	}
	if got, _ := s.Get("a1"); got.State.Pid != 7 {
		t.Fatalf("failed update changed the record: pid %d", got.State.Pid)
	}

	for _, tc := range []struct {
		ref, name, want string
		check           func(error) bool
	}{
		{"a1", "b1", `Conflict. The container name "/b1" is already in use by container "` + b.ID + `"`, errdefs.IsConflict},
		{"a1", "a1", "Renaming a container with the same name as its current name", errdefs.IsInvalidArgument},
		{"a1", "bad/x", "Invalid container name (bad/x)", errdefs.IsInvalidArgument},
		{"a1", "", "Neither old nor new names may be empty", errdefs.IsInvalidArgument},
		{"nosuch", "z1", "No such container: nosuch", errdefs.IsNotFound},
	} {
		err := s.Rename(tc.ref, tc.name)
		if err == nil || !tc.check(err) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Rename(%q, %q) = %v, want %q", tc.ref, tc.name, err, tc.want)
		}
	}
	if err := s.Rename("a1", "renamed"); err != nil {
		t.Fatal(err)
	}
	if s.NameInUse("a1") || !s.NameInUse("/renamed") {
		t.Fatal("rename did not move the name")
	}
	// The new name is durable; the old one is free for a new container.
	if got := openStore(t, root); true {
		if c, err := got.Get("renamed"); err != nil || c.ID != a.ID {
			t.Fatalf("after reopen, renamed = %v, %v", c, err)
		}
	}
	if err := s.Create(newContainer(t, "a1")); err != nil {
		t.Fatalf("old name not reusable: %v", err)
	}

	if err := s.Delete("renamed"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(a.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("deleted container still found: %v", err)
	}
	if _, err := os.Stat(s.Dir(a.ID)); !os.IsNotExist(err) {
		t.Fatal("deleted container's directory remains")
	}
	if entries, _ := filepath.Glob(filepath.Join(root, removingPrefix+"*")); len(entries) != 0 {
		t.Fatalf("removal left %v", entries)
	}
	if _, err := s.Update(a.ID, func(*Container) error { return nil }); !errdefs.IsNotFound(err) {
		t.Fatalf("Update of a deleted container = %v", err)
	}
}

// TestCrashDuringWrites kills a process that rewrites a record in a loop
// at random moments; every reopen must load a complete record.
func TestCrashDuringWrites(t *testing.T) {
	if os.Getenv("BERTH_STORE_CRASH_CHILD") != "" {
		return
	}
	root := t.TempDir()
	s := openStore(t, root)
	c := newContainer(t, "crashy")
	c.Config.Labels = map[string]string{"pid": "0"}
	if err := s.Create(c); err != nil {
		t.Fatal(err)
	}
	last := 0
	for i := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "BERTH_STORE_CRASH_ROOT="+root, "BERTH_STORE_CRASH_CHILD=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(50+i*37) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		s2, problems, err := Open(root)
		if err != nil || len(problems) != 0 {
			t.Fatalf("after kill %d: open %v, problems %v", i, err, problems)
		}
		got, err := s2.Get("crashy")
		if err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
		// Each version is self-consistent: the label repeats the pid.
		if got.Config.Labels["pid"] != strconv.Itoa(got.State.Pid) {
			t.Fatalf("after kill %d: torn record: pid %d label %q", i, got.State.Pid, got.Config.Labels["pid"])
		}
		last = got.State.Pid
	}
	if last == 0 {
		t.Fatal("the writer never committed a record: the kills tested nothing")
	}
}

// TestCrashChild is the writer TestCrashDuringWrites kills.
func TestCrashChild(t *testing.T) {
	root := os.Getenv("BERTH_STORE_CRASH_ROOT")
	if root == "" {
		t.Skip("helper process of TestCrashDuringWrites")
	}
	s, _, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; ; i++ {
		_, err := s.Update("crashy", func(c *Container) error {
			c.State.Pid = i
			c.Config.Labels = map[string]string{"pid": strconv.Itoa(i), "pad": strings.Repeat("x", i%5000)}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecordIsJSONOnDisk(t *testing.T) {
	s := openStore(t, t.TempDir())
	c := newContainer(t, "disk")
	s.Create(c)
	b, err := os.ReadFile(filepath.Join(s.Dir(c.ID), RecordFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ID", "Name", "Created", "Path", "Args", "Config", "HostConfig", "Image", "State", "RestartCount", "Driver"} {
		if _, ok := m[k]; !ok {
			t.Errorf("record lacks %s", k)
		}
	}
	if st, _ := os.Stat(filepath.Join(s.Dir(c.ID), RecordFile)); st.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v, want 0600", st.Mode().Perm())
	}
}
