package userns_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/idmap"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// TestRemapDefault: --userns-remap=default, from daemon.json, creates the
// user and group berthremap and their subordinate ranges (removed again
// at the end unless they were there before).
func TestRemapDefault(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	if _, err := idmap.Resolve(idmap.DefaultUser, idmap.HostFiles); err == nil {
		t.Logf("%s exists already: kept", idmap.DefaultUser)
	} else {
		t.Cleanup(func() {
			if out, err := exec.Command("userdel", idmap.DefaultUser).CombinedOutput(); err != nil {
				t.Errorf("userdel: %v: %s", err, out)
			}
			exec.Command("groupdel", idmap.DefaultUser).Run()
			for _, f := range []string{idmap.HostFiles.Subuid, idmap.HostFiles.Subgid} {
				removeLines(t, f, idmap.DefaultUser+":")
			}
		})
	}
	dir, err := berthd.NewDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(conf, []byte(`{"userns-remap": "default"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	d := launch(t, dir, "--config-file", conf)
	r, err := idmap.Resolve(idmap.DefaultUser, idmap.HostFiles)
	if err != nil {
		t.Fatalf("after --userns-remap=default: %v", err)
	}
	uid, _ := r.Root()
	out := d.Must(t, "run", "--rm", "busybox", "cat", "/proc/self/uid_map")
	if got := strings.Join(strings.Fields(out), " "); got != fmt.Sprintf("0 %d 65536", uid) {
		t.Errorf("uid_map with the default remap: %q (berthremap's range starts at %d)", got, uid)
	}
	// inspect shows UsernsMode as given; a bad one is refused as dockerd.
	d.Must(t, "create", "--name", "hostns", "--userns", "host", "busybox")
	if out := d.Must(t, "inspect", "-f", "{{.HostConfig.UsernsMode}}", "hostns"); strings.TrimSpace(out) != "host" {
		t.Errorf("UsernsMode: %q", out)
	}
	if out, code := docker(t, d, "create", "--userns", "private", "busybox"); code == 0 || !strings.Contains(out, "invalid USER mode") {
		t.Errorf("--userns private: %d %q", code, out)
	}
}

// launch starts berthd in dir (already opened to remapped roots) with
// args and the busybox image, and stops it at cleanup.
func launch(t *testing.T, dir string, args ...string) *berthd.Daemon {
	t.Helper()
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	cgroup := "/" + testutil.UniqueName(t)
	d, err := berthd.Launch(bin, dir, append([]string{"--cgroup-parent", cgroup}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer testutil.RemoveCgroupTree(cgroup)
		if ids, err := d.Docker("ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			d.Docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
		if err := d.Stop(); err != nil {
			t.Errorf("berthd: %v\n%s", err, d.Log())
		}
	})
	d.Must(t, "load", "-i", busyboxArchive(t))
	return d
}

// TestRemapRefused: values that name no usable range stop berthd with a
// message naming the user and the file.
func TestRemapRefused(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "none.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"), "-H", "unix://" + filepath.Join(dir, "s.sock"), "--config-file", filepath.Join(dir, "none.json")}
	for value, want := range map[string]string{
		"no-such-user-x": `user "no-such-user-x": no entry in /etc/passwd`,
		"root":           `no subordinate range for "root" in /etc/subuid`,
		":":              "no user name",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, append([]string{"--userns-remap", value}, base...)...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("berthd --userns-remap %s: %v: %s (want %q)", value, err, out, want)
		}
	}
}
