package volume_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBindMounts: -v and --mount type=bind as Docker parses them, seen
// from inside and in inspect.
func TestBindMounts(t *testing.T) {
	d := daemon(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "hello"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := d.DockerCode(t, "run", "--rm", "-v", host+":/data", "busybox", "cat", "/data/hello"); code != 0 || out != "from host\n" {
		t.Errorf("-v bind: %q exit %d", out, code)
	}
	if out, code := d.DockerCode(t, "run", "--rm", "-v", host+":/data", "busybox", "sh", "-c", "echo back > /data/back"); code != 0 {
		t.Errorf("-v rw write: %q exit %d", out, code)
	}
	if b, err := os.ReadFile(filepath.Join(host, "back")); err != nil || string(b) != "back\n" {
		t.Errorf("the container's write is not on the host: %q %v", b, err)
	}
	out, code := d.DockerCode(t, "run", "--rm", "-v", host+":/data:ro", "busybox", "touch", "/data/nope")
	if code == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("-v :ro write: %q exit %d, want Read-only file system", out, code)
	}
	if _, err := os.Stat(filepath.Join(host, "nope")); err == nil {
		t.Error("a write through a read-only bind reached the host")
	}
	// z/Z are accepted (no SELinux here: nothing to relabel).
	if out, code := d.DockerCode(t, "run", "--rm", "-v", host+":/data:ro,Z", "busybox", "cat", "/data/hello"); code != 0 || out != "from host\n" {
		t.Errorf("-v :ro,Z: %q exit %d", out, code)
	}
	if !strings.Contains(d.Log(), "SELinux label mode Z ignored: SELinux is not enabled on this host") {
		t.Error("no note in the daemon's log about the ignored Z")
	}
	// A missing host path is created for -v...
	missing := filepath.Join(host, "made", "by", "v")
	if out, code := d.DockerCode(t, "run", "--rm", "-v", missing+":/m", "busybox", "true"); code != 0 {
		t.Errorf("-v missing source: %q exit %d", out, code)
	}
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() {
		t.Errorf("-v did not create its missing source: %v", err)
	}
	// ... and an error for --mount.
	gone := filepath.Join(host, "not-there")
	out, code = d.DockerCode(t, "run", "--rm", "--mount", "type=bind,src="+gone+",dst=/m", "busybox", "true")
	if code != 125 || !strings.Contains(out, `invalid mount config for type "bind": bind source path does not exist: `+gone) {
		t.Errorf("--mount bind of a missing path: %q exit %d", out, code)
	}
	if _, err := os.Stat(gone); err == nil {
		t.Error("--mount type=bind created its missing source")
	}
	// A file can be bound too, read-only through --mount.
	out, code = d.DockerCode(t, "run", "--rm", "--mount", "type=bind,src="+filepath.Join(host, "hello")+",dst=/etc/motd,readonly", "busybox", "sh", "-c", "cat /etc/motd && echo x > /etc/motd")
	if code == 0 || !strings.Contains(out, "from host\n") || !strings.Contains(out, "Read-only file system") {
		t.Errorf("--mount file bind readonly: %q exit %d", out, code)
	}

	// inspect shows them as Docker does.
	d.Must(t, "create", "--name", "insp", "-v", host+":/a:ro", "--mount", "type=bind,src="+host+",dst=/b,bind-propagation=rslave", "busybox", "true")
	var mounts []map[string]any
	if err := json.Unmarshal([]byte(d.Must(t, "inspect", "-f", "{{json .Mounts}}", "insp")), &mounts); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/a": `{"Destination":"/a","Mode":"ro","Propagation":"rprivate","RW":false,"Source":"` + host + `","Type":"bind"}`,
		"/b": `{"Destination":"/b","Mode":"","Propagation":"rslave","RW":true,"Source":"` + host + `","Type":"bind"}`,
	}
	if len(mounts) != 2 {
		t.Fatalf("inspect .Mounts: %v", mounts)
	}
	for _, m := range mounts {
		b, _ := json.Marshal(m)
		if w := want[m["Destination"].(string)]; string(b) != w {
			t.Errorf("mount %s\nwant %s", b, w)
		}
	}
	if out := d.Must(t, "ps", "-a", "--filter", "volume=/b", "--format", "{{.Names}}"); out != "insp\n" {
		t.Errorf("ps --filter volume=/b: %q", out)
	}
	if out := d.Must(t, "ps", "-a", "--filter", "volume=/nothing", "--format", "{{.Names}}"); out != "" {
		t.Errorf("ps --filter volume=/nothing: %q", out)
	}
	// rslave needs a shared or slave host mount: / is private here.
	out, code = d.DockerCode(t, "start", "-a", "insp")
	if code == 0 || !strings.Contains(out, "is mounted on") || !strings.Contains(out, "not a shared or slave mount") {
		t.Errorf("rslave bind of a private mount: %q exit %d", out, code)
	}
}

// TestBindBadInput: dockerd's messages and status codes for bad binds
// and mounts, through the API.
func TestBindBadInput(t *testing.T) {
	d := daemon(t)
	host := t.TempDir()
	for _, c := range []struct{ hc, msg string }{
		{`{"Binds":["` + host + `:/a:rw,ro"]}`, "invalid mode: rw,ro"},
		{`{"Binds":["` + host + `:/a:bogus"]}`, "invalid mode: bogus"},
		{`{"Binds":["` + host + `:relative"]}`, "invalid volume specification: '" + host + ":relative'"},
		{`{"Binds":["` + host + `:/"]}`, "destination can't be '/'"},
		{`{"Binds":["/a:rw"]}`, "invalid volume specification: '/a:rw'"},
		{`{"Binds":["` + host + `:/a","` + host + `:/a"]}`, "Duplicate mount point: /a"},
		{`{"Binds":["` + host + `:/a"],"Mounts":[{"Type":"bind","Source":"` + host + `","Target":"/a"}]}`, "Duplicate mount point: /a"},
		{`{"Mounts":[{"Type":"bind","Target":"/a"}]}`, `invalid mount config for type "bind": field Source must not be empty`},
		{`{"Mounts":[{"Type":"bind","Source":"` + host + `","Target":"/a","BindOptions":{"Propagation":"sideways"}}]}`, "invalid propagation mode: sideways"},
		{`{"Mounts":[{"Type":"bogus","Target":"/a"}]}`, `invalid mount config for type "bogus": mount type unknown`},
		{`{"Mounts":[{"Type":"volume","Target":"/a","ReadOnly":true}]}`, "must not set ReadOnly mode when using anonymous volumes"},
		{`{"Mounts":[{"Type":"tmpfs","Source":"x","Target":"/a"}]}`, `invalid mount config for type "tmpfs": field Source must not be specified`},
		{`{"Binds":["bad/name:/a"]}`, `"bad/name" includes invalid characters for a local volume name`},
		{`{"Tmpfs":{"relative":""}}`, "invalid mount path: 'relative' mount path must be absolute"},
	} {
		r := raw(t, d, "POST", "/containers/create", `{"Image":"busybox","Cmd":["true"],"HostConfig":`+c.hc+`}`)
		if r.Status != 400 || !strings.Contains(r.Message(t), c.msg) {
			t.Errorf("%s: %d %s, want 400 with %q", c.hc, r.Status, r.Body, c.msg)
		}
	}
	for _, hc := range []string{
		`{"Mounts":[{"Type":"image","Source":"busybox","Target":"/i"}]}`,
		`{"Mounts":[{"Type":"volume","Source":"v2","Target":"/v","VolumeOptions":{"Subpath":"x"}}]}`,
		`{"Mounts":[{"Type":"bind","Source":"` + host + `","Target":"/b","BindOptions":{"ReadOnlyNonRecursive":true}}]}`,
	} {
		r := raw(t, d, "POST", "/containers/create", `{"Image":"busybox","Cmd":["true"],"HostConfig":`+hc+`}`)
		if r.Status != 501 {
			t.Errorf("%s: %d %s, want 501 naming what is missing", hc, r.Status, r.Body)
		}
	}
	// Nothing of the refused requests stayed behind.
	if out := d.Must(t, "ps", "-aq"); out != "" {
		t.Errorf("refused creates left containers: %q", out)
	}
	if out := d.Must(t, "volume", "ls", "-q"); out != "" {
		t.Errorf("refused creates left volumes: %q", out)
	}
}

// TestSharedPropagation: an rshared bind of a shared host mount sees
// what the host mounts under it after the container started.
func TestSharedPropagation(t *testing.T) {
	d := daemon(t)
	dir := t.TempDir()
	mustRun(t, "mount", "-t", "tmpfs", "berth-test", dir)
	t.Cleanup(func() { mustRun(t, "umount", "-l", dir) })
	mustRun(t, "mount", "--make-shared", dir)
	d.Must(t, "run", "-d", "--name", "sh", "-v", dir+":/shared:rshared", "busybox", "sleep", "100")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mount", "-t", "tmpfs", "berth-sub", sub)
	t.Cleanup(func() { mustRun(t, "umount", "-l", sub) })
	if out := d.Must(t, "exec", "sh", "sh", "-c", "grep -c ' /shared/sub ' /proc/self/mountinfo"); out != "1\n" {
		t.Errorf("the host's new mount did not propagate into the rshared bind: %q", out)
	}
	d.Must(t, "rm", "-f", "sh")
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := execCommand(name, args...); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// TestBindNonRecursive: a bind takes the submounts of its source along
// unless bind-nonrecursive.
func TestBindNonRecursive(t *testing.T) {
	d := daemon(t)
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mount", "-t", "tmpfs", "berth-sub", sub)
	t.Cleanup(func() { mustRun(t, "umount", "-l", sub) })
	os.WriteFile(filepath.Join(sub, "in-submount"), nil, 0o644)
	if out := d.Must(t, "run", "--rm", "-v", dir+":/b", "busybox", "ls", "/b/sub"); out != "in-submount\n" {
		t.Errorf("recursive bind: %q", out)
	}
	if out := d.Must(t, "run", "--rm", "--mount", "type=bind,src="+dir+",dst=/b,bind-nonrecursive", "busybox", "ls", "/b/sub"); out != "" {
		t.Errorf("bind-nonrecursive shows the submount: %q", out)
	}
}
