package volume_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// TestNamedVolumes: volume verbs through the docker CLI, a volume made on
// demand by run, its data surviving the container, refused removal while
// used, copy-up from the image (and nocopy).
func TestNamedVolumes(t *testing.T) {
	d := daemon(t)
	if out := d.Must(t, "volume", "create", "--label", "team=storage", "v1"); out != "v1\n" {
		t.Errorf("volume create: %q", out)
	}
	if out := d.Must(t, "volume", "ls"); out != "DRIVER    VOLUME NAME\nlocal     v1\n" {
		t.Errorf("volume ls:\n%s", out)
	}
	var vols []map[string]any
	if err := json.Unmarshal([]byte(d.Must(t, "volume", "inspect", "v1")), &vols); err != nil || len(vols) != 1 {
		t.Fatalf("volume inspect: %v %v", vols, err)
	}
	v := vols[0]
	mp := filepath.Join(d.DataRoot, "volumes", "v1", "_data")
	if v["Name"] != "v1" || v["Driver"] != "local" || v["Scope"] != "local" || v["Mountpoint"] != mp ||
		v["Labels"].(map[string]any)["team"] != "storage" || !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d`).MatchString(v["CreatedAt"].(string)) {
		t.Errorf("volume inspect: %v", v)
	}
	if out, code := d.DockerCode(t, "volume", "inspect", "nope"); code != 1 || !strings.Contains(out, "No such volume: nope") {
		t.Errorf("inspect of a missing volume: %q exit %d", out, code)
	}

	// Data written by one container is there for the next, and on the host.
	d.Must(t, "run", "--name", "writer", "-v", "v1:/data", "busybox", "sh", "-c", "echo kept > /data/f")
	if b, err := os.ReadFile(filepath.Join(mp, "f")); err != nil || string(b) != "kept\n" {
		t.Errorf("volume data on the host: %q %v", b, err)
	}
	// A volume used by a container, even a stopped one, cannot go.
	out, code := d.DockerCode(t, "volume", "rm", "v1")
	if code != 1 || !strings.Contains(out, "volume is in use") {
		t.Errorf("volume rm of a used volume: %q exit %d", out, code)
	}
	if r := raw(t, d, "DELETE", "/volumes/v1?force=1", ""); r.Status != 409 {
		t.Errorf("DELETE of a used volume: %d %s, want 409", r.Status, r.Body)
	}
	var mounts []map[string]any
	json.Unmarshal([]byte(d.Must(t, "inspect", "-f", "{{json .Mounts}}", "writer")), &mounts)
	if b, _ := json.Marshal(mounts); string(b) != `[{"Destination":"/data","Driver":"local","Mode":"z","Name":"v1","Propagation":"","RW":true,"Source":"`+mp+`","Type":"volume"}]` {
		t.Errorf("inspect .Mounts of a -v volume: %s", b)
	}
	if out := d.Must(t, "ps", "-a", "--filter", "volume=v1", "--format", "{{.Names}}"); out != "writer\n" {
		t.Errorf("ps --filter volume=v1: %q", out)
	}
	d.Must(t, "rm", "writer")
	if out := d.Must(t, "run", "--rm", "-v", "v1:/data:ro", "busybox", "cat", "/data/f"); out != "kept\n" {
		t.Errorf("data after the container's removal: %q", out)
	}
	if out := d.Must(t, "volume", "rm", "v1"); out != "v1\n" {
		t.Errorf("volume rm: %q", out)
	}
	if _, err := os.Stat(filepath.Dir(mp)); !os.IsNotExist(err) {
		t.Errorf("volume rm left its directory: %v", err)
	}
	if out, code := d.DockerCode(t, "volume", "rm", "v1"); code != 1 || !strings.Contains(strings.ToLower(out), "no such volume") {
		t.Errorf("rm of a removed volume: %q exit %d", out, code)
	}
	if out, code := d.DockerCode(t, "volume", "rm", "-f", "v1"); code != 0 {
		t.Errorf("rm -f of a missing volume: %q exit %d", out, code)
	}

	// Made on demand by run, filled from the image's /etc.
	if out := d.Must(t, "run", "--rm", "-v", "etc:/etc", "busybox", "cat", "/etc/group"); !strings.HasPrefix(out, "root:x:0:") {
		t.Errorf("copy-up: /etc/group in the volume: %q", out)
	}
	if _, err := os.Stat(filepath.Join(d.DataRoot, "volumes", "etc", "_data", "passwd")); err != nil {
		t.Errorf("copy-up did not reach the volume: %v", err)
	}
	// Only the first time: a volume with content is not refilled.
	d.Must(t, "run", "--rm", "-v", "etc:/etc", "busybox", "rm", "/etc/passwd")
	if out, code := d.DockerCode(t, "run", "--rm", "-v", "etc:/etc", "busybox", "ls", "/etc/passwd"); code == 0 {
		t.Errorf("a used volume was filled again: %q", out)
	}
	// Hard links stay links in the copy (one file under many names is
	// copied once).
	d.Must(t, "run", "--name", "hl", "busybox", "sh", "-c", "mkdir /h && echo x > /h/a && ln /h/a /h/b")
	d.Must(t, "commit", "hl", "hlimg")
	d.Must(t, "rm", "hl")
	if out := d.Must(t, "run", "--rm", "hlimg", "stat", "-c", "%h", "/h/a"); out != "2\n" {
		t.Fatalf("the committed image lost the hard link: %q", out)
	}
	if out := d.Must(t, "run", "--rm", "-v", "hv:/h", "hlimg", "sh", "-c", "stat -c '%i %h' /h/a /h/b"); len(berthd.Lines(out)) != 2 || berthd.Lines(out)[0] != berthd.Lines(out)[1] || !strings.HasSuffix(berthd.Lines(out)[0], " 2") {
		t.Errorf("hard links in a copied-up volume: %q", out)
	}
	d.Must(t, "volume", "rm", "hv")
	d.Must(t, "rmi", "hlimg")
	if out := d.Must(t, "run", "--rm", "-v", "full:/var", "busybox", "ls", "-A", "/var"); out == "" {
		t.Error("the image's /var is empty: the nocopy checks below prove nothing")
	}
	if out := d.Must(t, "run", "--rm", "-v", "empty:/var:nocopy", "busybox", "ls", "-A", "/var"); out != "" {
		t.Errorf("nocopy volume has %q", out)
	}
	if out := d.Must(t, "run", "--rm", "--mount", "type=volume,src=empty2,dst=/var,volume-nocopy", "busybox", "ls", "-A", "/var"); out != "" {
		t.Errorf("--mount volume-nocopy volume has %q", out)
	}
	if out := d.Must(t, "volume", "ls", "-q"); out != "empty\nempty2\netc\nfull\n" {
		t.Errorf("volume ls -q: %q", out)
	}
	if out := d.Must(t, "volume", "ls", "-q", "--filter", "name=empt", "--filter", "dangling=true"); out != "empty\nempty2\n" {
		t.Errorf("volume ls name/dangling filters: %q", out)
	}
	d.Must(t, "volume", "rm", "empty", "empty2", "etc", "full")
}

// TestAnonymousVolumes: -v /path, rm -v, --rm, prune, the image's VOLUME
// with its content, --volumes-from with :ro.
func TestAnonymousVolumes(t *testing.T) {
	d := daemon(t)
	d.Must(t, "run", "--name", "anon", "-v", "/data", "busybox", "sh", "-c", "echo a > /data/f")
	name := strings.TrimSpace(d.Must(t, "inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "anon"))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(name) {
		t.Fatalf("anonymous volume name %q", name)
	}
	if out := d.Must(t, "volume", "inspect", "-f", "{{json .Labels}}", name); out != `{"com.docker.volume.anonymous":""}`+"\n" {
		t.Errorf("anonymous volume labels: %q", out)
	}
	// --volumes-from shares it, :ro read-only.
	if out := d.Must(t, "run", "--rm", "--volumes-from", "anon:ro", "busybox", "cat", "/data/f"); out != "a\n" {
		t.Errorf("--volumes-from: %q", out)
	}
	if out, code := d.DockerCode(t, "run", "--rm", "--volumes-from", "anon:ro", "busybox", "touch", "/data/g"); code == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("--volumes-from :ro write: %q exit %d", out, code)
	}
	if out := d.Must(t, "run", "--rm", "--volumes-from", "anon", "busybox", "sh", "-c", "echo b >> /data/f; cat /data/f"); out != "a\nb\n" {
		t.Errorf("--volumes-from rw: %q", out)
	}
	// rm without -v keeps it, rm -v removes a container's anonymous ones.
	d.Must(t, "run", "--name", "anon2", "-v", "/data", "-v", "named:/named", "busybox", "true")
	name2 := strings.TrimSpace(d.Must(t, "inspect", "-f", `{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}`, "anon2"))
	d.Must(t, "rm", "anon")
	if _, code := d.DockerCode(t, "volume", "inspect", name); code != 0 {
		t.Error("rm without -v removed the anonymous volume")
	}
	d.Must(t, "rm", "-v", "anon2")
	if _, code := d.DockerCode(t, "volume", "inspect", name2); code == 0 {
		t.Error("rm -v kept the anonymous volume")
	}
	if _, code := d.DockerCode(t, "volume", "inspect", "named"); code != 0 {
		t.Error("rm -v removed a named volume")
	}
	// run --rm removes its anonymous volumes too.
	before := d.Must(t, "volume", "ls", "-q")
	d.Must(t, "run", "--rm", "-v", "/scratch", "busybox", "true")
	if after := d.Must(t, "volume", "ls", "-q"); after != before {
		t.Errorf("run --rm left an anonymous volume: %q -> %q", before, after)
	}

	// The image's VOLUME gets an anonymous volume holding the image's
	// content there.
	d.Must(t, "run", "--name", "mk", "busybox", "sh", "-c", "mkdir -p /vol && echo seed > /vol/seed && chown 65534:65534 /vol")
	d.Must(t, "commit", "--change", "VOLUME /vol", "mk", "withvol")
	d.Must(t, "rm", "mk")
	out := d.Must(t, "run", "--name", "iv", "withvol", "sh", "-c", "cat /vol/seed; stat -c %u /vol; grep -c ' /vol ' /proc/self/mountinfo")
	if out != "seed\n65534\n1\n" {
		t.Errorf("image VOLUME: %q, want its content, owner and a mount", out)
	}
	// A bind at the same destination wins over the image's volume.
	host := t.TempDir()
	if out := d.Must(t, "run", "--rm", "-v", host+":/vol", "withvol", "ls", "-A", "/vol"); out != "" {
		t.Errorf("bind over an image VOLUME shows %q", out)
	}
	// 20.10's prune (API 1.41) takes every unused volume; in use stay.
	out = d.Must(t, "volume", "prune", "-f")
	if !strings.Contains(out, "Deleted Volumes:\n") || !strings.Contains(out, name+"\n") || !strings.Contains(out, "named\n") || !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("volume prune: %q", out)
	}
	ivVol := strings.TrimSpace(d.Must(t, "inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "iv"))
	if out := d.Must(t, "volume", "ls", "-q"); out != ivVol+"\n" {
		t.Errorf("after prune: %q, want only %s (in use)", out, ivVol)
	}
	d.Must(t, "rm", "-v", "iv")
	if out := d.Must(t, "volume", "ls", "-q"); out != "" {
		t.Errorf("after rm -v: %q", out)
	}
	d.Must(t, "rmi", "withvol")
}

// TestLocalDriverOptions: the local driver's type/device/o for tmpfs and
// bind volumes, and its refusals.
func TestLocalDriverOptions(t *testing.T) {
	d := daemon(t)
	d.Must(t, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m,uid=1000", "tv")
	out := d.Must(t, "run", "--rm", "-v", "tv:/t", "busybox", "sh", "-c", "grep ' /t ' /proc/self/mountinfo; stat -c %u /t")
	if !strings.Contains(out, " - tmpfs tmpfs ") || !strings.Contains(out, "size=2048k") || !strings.HasSuffix(out, "\n1000\n") {
		t.Errorf("tmpfs volume inside: %q", out)
	}
	if out := d.Must(t, "volume", "inspect", "-f", "{{json .Options}}", "tv"); out != `{"device":"tmpfs","o":"size=2m,uid=1000","type":"tmpfs"}`+"\n" {
		t.Errorf("tmpfs volume options: %q", out)
	}
	d.Must(t, "volume", "rm", "tv")

	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "x"), []byte("bound\n"), 0o644)
	d.Must(t, "volume", "create", "-o", "type=none", "-o", "device="+host, "-o", "o=bind", "bv")
	if out := d.Must(t, "run", "--rm", "-v", "bv:/b", "busybox", "cat", "/b/x"); out != "bound\n" {
		t.Errorf("bind volume: %q", out)
	}
	d.Must(t, "volume", "rm", "bv")

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-o", "foo=bar"}, `invalid option: "foo"`},
		{[]string{"-o", "type=tmpfs"}, `missing required option: "device"`},
		{[]string{"-o", "size=1g"}, "quota size requested but no quota support"},
		{[]string{"-d", "nfsplugin"}, "plugin \"nfsplugin\" not found"},
	} {
		out, code := d.DockerCode(t, append(append([]string{"volume", "create"}, c.args...), "bad")...)
		if code == 0 || !strings.Contains(out, c.msg) {
			t.Errorf("volume create %v: %q exit %d, want %q", c.args, out, code, c.msg)
		}
	}
	if out, code := d.DockerCode(t, "run", "--rm", "--volume-driver", "nfsplugin", "-v", "viadriver:/x", "busybox", "true"); code != 125 || !strings.Contains(out, `plugin "nfsplugin" not found`) {
		t.Errorf("run --volume-driver nfsplugin: %q exit %d", out, code)
	}
	if out, code := d.DockerCode(t, "volume", "create", "a/b"); code == 0 || !strings.Contains(out, "includes invalid characters for a local volume name") {
		t.Errorf("volume create a/b: %q exit %d", out, code)
	}
	if out := d.Must(t, "volume", "ls", "-q"); out != "" {
		t.Errorf("refused creates left %q", out)
	}
}

// TestVolumeEventsAndDiskUsage: volume create/destroy events and the
// volumes of system df.
func TestVolumeEventsAndDiskUsage(t *testing.T) {
	d := daemon(t)
	d.Must(t, "volume", "create", "ev")
	d.Must(t, "run", "--name", "user1", "-v", "ev:/d", "busybox", "sh", "-c", "head -c 3000 /dev/zero > /d/z")
	out := d.Must(t, "system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}}")
	if !strings.Contains(out, "Local Volumes 1 1 3kB\n") {
		t.Errorf("system df: %q", out)
	}
	out = d.Must(t, "system", "df", "-v", "--format", "{{range .Volumes}}{{.Name}} {{.Links}} {{.Size}}{{end}}")
	if strings.TrimSpace(out) != "ev 1 3kB" {
		t.Errorf("system df -v volumes: %q", out)
	}
	d.Must(t, "rm", "user1")
	d.Must(t, "volume", "rm", "ev")
	d.Must(t, "run", "--name", "anonev", "-v", "/a", "busybox", "true")
	anon := strings.TrimSpace(d.Must(t, "inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "anonev"))
	d.Must(t, "rm", "-v", "anonev")
	until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	out = d.Must(t, "events", "--since", "0", "--until", until, "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}")
	want := "create ev\nmount ev\nunmount ev\ndestroy ev\ncreate " + anon + "\nmount " + anon + "\nunmount " + anon + "\ndestroy " + anon + "\n"
	if out != want {
		t.Errorf("volume events:\n%s\nwant:\n%s", out, want)
	}
}

// TestCpWithVolumes: docker cp sees a container's volumes and binds, on a
// created container (bound into its temporary rootfs for the copy) and a
// running one, and a read-only one refuses the write.
func TestCpWithVolumes(t *testing.T) {
	d := daemon(t)
	host := t.TempDir()
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte("copied\n"), 0o644)
	vol := filepath.Join(d.DataRoot, "volumes", "cpvol", "_data")
	d.Must(t, "create", "--name", "cpv", "-v", "cpvol:/data", "-v", host+":/bind", "-v", "cpvol:/ro:ro", "busybox", "true")
	d.Must(t, "cp", f, "cpv:/data/")
	d.Must(t, "cp", f, "cpv:/bind/")
	if b, err := os.ReadFile(filepath.Join(vol, "f")); err != nil || string(b) != "copied\n" {
		t.Errorf("cp into a created container's volume: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(host, "f")); err != nil || string(b) != "copied\n" {
		t.Errorf("cp into a created container's bind: %q %v", b, err)
	}
	if out := d.Must(t, "cp", "cpv:/data/f", "-"); !strings.Contains(out, "copied") {
		t.Errorf("cp out of a created container's volume: %q", out)
	}
	if out, code := d.DockerCode(t, "cp", f, "cpv:/ro/"); code == 0 {
		t.Errorf("cp into a read-only volume succeeded: %q", out)
	}
	d.Must(t, "run", "-d", "--name", "cpr", "-v", "cpvol:/data", "busybox", "sleep", "1000")
	os.WriteFile(f, []byte("running\n"), 0o644)
	d.Must(t, "cp", f, "cpr:/data/g")
	if b, err := os.ReadFile(filepath.Join(vol, "g")); err != nil || string(b) != "running\n" {
		t.Errorf("cp into a running container's volume: %q %v", b, err)
	}
	if out := d.Must(t, "exec", "cpr", "cat", "/data/g"); out != "running\n" {
		t.Errorf("the running container does not see the copy: %q", out)
	}
	d.Must(t, "rm", "-f", "cpv", "cpr")
	d.Must(t, "volume", "rm", "cpvol")
}
