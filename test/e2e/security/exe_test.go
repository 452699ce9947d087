package security

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// exeReport mirrors the attacker's exewatch report.
type exeReport struct {
	Held      []string       `json:"held"`
	LookErrs  map[string]int `json:"look_errs"`
	OpenErrs  map[string]int `json:"open_errs"`
	WriteErrs map[string]int `json:"write_errs"`
	MountErrs map[string]int `json:"mount_errs"`
	InitFds   int            `json:"init_fds"`
	InitErrs  map[string]int `json:"init_errs"`
	Wrote     []string       `json:"wrote"`
	Pids      int            `json:"pids"`
}

// TestRuntimeBinaryNotWritableFromContainer reproduces CVE-2019-5736: the
// container's /bin/sh is a "#!/proc/self/exe" script, so `berth-runtime exec
// ID sh` makes the runtime's own process re-execute the runtime binary
// inside the container, where the container's pid 1 is waiting: it grabs
// /proc/<pid>/exe of every process that runs the runtime and keeps trying
// to open it for writing (directly with O_TRUNC, and by reopening its
// O_PATH handle through /proc/self/fd) until well after the runtime on the
// host has exited. The runtime under test is a private copy of
// bin/berth-runtime, so the real one is never at risk; the test asserts the
// copy is byte-identical afterwards.
//
// Meanwhile it also tries to follow the fds of every "berth-runtime init"
// process it sees, i.e. of the exec's setup in the container.
//
// Defense: the container process runs from a handle no one can write
// through: a read-only detached clone of the binary's mount, or a sealed
// memfd copy (runtime/linux/spawn.go sealedSelf). With both disabled (exec
// /proc/self/exe instead) this test fails: the attacker overwrites the
// copy as soon as the host's `exec` returns. And nsenter.c makes the
// process non-dumpable before it joins the container; without that the
// default-caps case fails on the followed init fds.
func TestRuntimeBinaryNotWritableFromContainer(t *testing.T) {
	t.Run("default-caps", func(t *testing.T) { testExeOverwrite(t, nil) })
	// CAP_SYS_PTRACE also lets it open /proc/<pid>/exe of the runtime while
	// it is still non-dumpable, during the exec's setup.
	t.Run("all-caps", func(t *testing.T) { testExeOverwrite(t, allCapsButSysResource) })
}

func testExeOverwrite(t *testing.T, caps []string) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	real := testutil.NewRuntime(t).Binary
	bin := filepath.Join(t.TempDir(), "berth-runtime")
	copyFile(t, real, bin, 0o755)
	before := sum(t, bin)
	rt := testutil.RuntimeFor(t, bin)
	// If the attack works the copy is garbage: clean up with the original.
	rescue := &fixture.Runner{Binary: real, Root: rt.Root}
	t.Cleanup(func() { _ = rescue.Cleanup() })

	opts := []testutil.Option{testutil.WithArgs("/attacker", "exewatch", "/ready", "/stop", "/report", "60s")}
	if caps != nil {
		opts = append(opts, withCaps(caps...))
	}
	b := testutil.NewBundle(t, opts...)
	installAttacker(t, b.Rootfs)
	// The malicious image: a glibc userland (so the dynamically linked
	// runtime can run in it) whose shell is the runtime, re-executed.
	installSharedLibs(t, b.Rootfs, bin)
	sh := filepath.Join(b.Rootfs, "bin/sh")
	if err := os.Remove(sh); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sh, []byte("#!/proc/self/exe\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	id := testutil.UniqueName(t)
	rt.MustRun("create", "--bundle", b.Dir, id)
	rt.MustRun("start", id)
	waitFile(t, filepath.Join(b.Rootfs, "ready"))

	for i := 0; i < 5; i++ {
		// Fails: the "shell" is the runtime's command line. What matters is
		// what the attacker could do to it meanwhile.
		_, _, _ = rt.Run("exec", id, "sh", "-c", "true")
	}
	// The user's program, not the runtime, is what an exec'd process runs.
	out, _, err := rt.Run("exec", id, "/attacker", "selfexe")
	if err != nil || strings.TrimSpace(out) != "exe /attacker <nil>" {
		t.Errorf("exec'd process: /proc/self/exe gives %q (%v), want /attacker", out, err)
	}
	// No runtime process is left on the host: a plain binary would now be
	// writable again (no more ETXTBSY). Give the attacker time to try.
	time.Sleep(500 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(b.Rootfs, "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rescue.WaitStatus(id, "stopped", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rescue.Run("delete", id); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(filepath.Join(b.Rootfs, "report"))
	if err != nil {
		t.Fatalf("attacker report: %v", err)
	}
	var rep exeReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("attacker report %q: %v", data, err)
	}
	t.Logf("attacker report: %s", data)

	if after := sum(t, bin); !bytes.Equal(before, after) {
		t.Errorf("the host's runtime binary was modified from inside the container")
	}
	if len(rep.Wrote) > 0 {
		t.Errorf("attacker wrote to the runtime binary through %v", rep.Wrote)
	}
	if len(rep.Held) == 0 {
		t.Fatalf("attacker never got hold of the runtime's /proc/<pid>/exe: the attack did not happen")
	}
	// The exec's setup process is non-dumpable until it execs the user's
	// program: without CAP_SYS_PTRACE nothing in the container may follow
	// its fds (the init socket to the host's runtime among them).
	if caps == nil {
		if rep.InitFds > 0 {
			t.Errorf("attacker followed %d fds of a runtime init process during setup", rep.InitFds)
		}
		if rep.InitErrs["EACCES"] == 0 {
			t.Errorf("attacker never met a runtime init process during setup: the dumpable probe did not happen")
		}
	}
	attempts := 0
	for k := range rep.MountErrs {
		if strings.HasSuffix(k, ":ok") && !strings.HasPrefix(k, "open_tree") {
			t.Errorf("attacker made the runtime binary's mount writable (%s)", k)
		}
	}
	for _, m := range []map[string]int{rep.OpenErrs, rep.WriteErrs} {
		for e, n := range m {
			attempts += n
			if e != "EACCES" && e != "ETXTBSY" && e != "EPERM" && e != "EROFS" {
				t.Errorf("write attempt failed with %s (%d times), want EACCES, ETXTBSY, EPERM or EROFS", e, n)
			}
		}
	}
	if attempts == 0 {
		t.Errorf("attacker made no write attempt")
	}
}

// installSharedLibs copies the shared libraries and ELF interpreter that
// bin needs into rootfs, at the paths ldd reports. A static bin needs none.
func installSharedLibs(t *testing.T, rootfs, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	dynamic := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
	f.Close()
	if !dynamic {
		return
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		default:
			continue
		}
		dst := filepath.Join(rootfs, lib)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, lib, dst, 0o755)
	}
}

func sum(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return s[:]
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
