package volume_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// TestBerthCLI: our CLI's volume verbs print what docker prints on the
// same daemon, and its run flags reach the same mounts.
func TestBerthCLI(t *testing.T) {
	d := daemon(t)
	mustBerth := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := d.Berth(t, stdin, args...)
		if code != 0 {
			t.Fatalf("berth %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	if out := mustBerth("", "volume", "create", "--label", "x=y", "-o", "type=tmpfs", "-o", "device=tmpfs", "bv"); out != "bv\n" {
		t.Errorf("volume create: %q", out)
	}
	mustBerth("", "volume", "create", "plain")
	for _, args := range [][]string{
		{"volume", "ls"},
		{"volume", "ls", "-q"},
		{"volume", "ls", "--format", "{{.Name}}\t{{.Labels}}\t{{.Mountpoint}}\t{{.Scope}}"},
		{"volume", "ls", "--format", "table {{.Name}}\t{{.Driver}}\t{{.Label \"x\"}}"},
		{"volume", "ls", "--filter", "label=x=y"},
		{"volume", "inspect", "bv", "plain"},
		{"volume", "inspect", "-f", "{{.Name}} {{json .Options}}", "bv"},
	} {
		b := mustBerth("", args...)
		if want := d.Must(t, args...); b != want {
			t.Errorf("berth %s:\n%s\ndocker:\n%s", strings.Join(args, " "), b, want)
		}
	}
	out, errOut, code := d.Berth(t, "", "volume", "inspect", "nosuch")
	if code != 1 || out != "[]\n" || !strings.Contains(errOut, "No such volume: nosuch") {
		t.Errorf("volume inspect nosuch: %q %q exit %d", out, errOut, code)
	}
	if _, errOut, code := d.Berth(t, "", "volume", "create", "--name", "a1", "a2"); code == 0 || !strings.Contains(errOut, "conflicting options") {
		t.Errorf("create --name and a name: %q exit %d", errOut, code)
	}

	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "h"), []byte("host\n"), 0o644)
	out = mustBerth("", "run", "--name", "user1", "-v", "bv:/bv", "-v", host+":/h:ro", "--mount", "type=volume,src=plain,dst=/p",
		"--tmpfs", "/t:size=1m", "--mount", "type=tmpfs,dst=/t2", "--read-only", "busybox", "sh", "-c",
		"echo v > /bv/f && cat /h/h && echo p > /p/f && echo t > /t/f && echo t2 > /t2/f && grep -c ' /bv .* - tmpfs ' /proc/self/mountinfo && (touch /root/x 2>/dev/null || echo ro)")
	if out != "host\n1\nro\n" {
		t.Errorf("berth run with mounts: %q", out)
	}
	if out := mustBerth("", "run", "--rm", "--volumes-from", "user1:ro", "busybox", "sh", "-c", "cat /p/f; touch /p/g 2>/dev/null || echo ro"); out != "p\nro\n" {
		t.Errorf("berth run --volumes-from: %q", out)
	}
	if b, dk := mustBerth("", "system", "df"), d.Must(t, "system", "df"); b != dk || !strings.Contains(b, "Local Volumes   2         2") {
		t.Errorf("berth system df:\n%s\ndocker:\n%s", b, dk)
	}
	if out := mustBerth("", "ps", "-a", "--filter", "volume=/h", "--format", "{{.Names}}"); out != "user1\n" {
		t.Errorf("berth ps --filter volume: %q", out)
	}
	_, errOut, code = d.Berth(t, "", "volume", "rm", "plain")
	if code != 1 || !strings.Contains(errOut, "volume is in use") {
		t.Errorf("berth volume rm of a used volume: %q exit %d", errOut, code)
	}
	mustBerth("", "rm", "user1")

	// prune asks first; berth speaks a recent API: anonymous volumes
	// only, unless -a.
	mustBerth("", "create", "--name", "anon", "-v", "/a", "busybox", "true")
	anonVol := strings.TrimSpace(mustBerth("", "inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "anon"))
	mustBerth("", "rm", "anon")
	out = mustBerth("n\n", "volume", "prune")
	if out != "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] " {
		t.Errorf("prune prompt: %q", out)
	}
	if out := mustBerth("", "volume", "ls", "-q"); len(berthd.Lines(out)) != 3 {
		t.Errorf("prune answered no removed something: %q", out)
	}
	if out := mustBerth("y\n", "volume", "prune"); !strings.Contains(out, "Deleted Volumes:\n"+anonVol+"\n\nTotal reclaimed space: ") {
		t.Errorf("prune: %q", out)
	}
	if out := mustBerth("", "volume", "ls", "-q"); out != "bv\nplain\n" {
		t.Errorf("after prune: %q", out)
	}
	if out := mustBerth("", "volume", "prune", "-a", "-f"); !strings.Contains(out, "bv\nplain\n") {
		t.Errorf("prune -a: %q", out)
	}
	if out := mustBerth("", "volume", "rm", "-f", "bv"); out != "bv\n" {
		t.Errorf("rm -f of a gone volume: %q", out)
	}
}

// TestVolumesAcrossRestart: a berthd killed and started again still
// knows which containers use which volume, and a running container's
// volume keeps working.
func TestVolumesAcrossRestart(t *testing.T) {
	d := daemon(t)
	d.Must(t, "run", "-d", "--name", "keeper", "-v", "kept:/data", "busybox", "sh", "-c", "echo before > /data/f; sleep 1000")
	d.Must(t, "create", "--name", "idle", "-v", "idlevol:/data", "busybox", "true")
	d.Crash()
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"kept", "idlevol"} {
		if out, code := d.DockerCode(t, "volume", "rm", v); code == 0 || !strings.Contains(out, "volume is in use") {
			t.Errorf("volume rm %s after a restart: %q exit %d", v, out, code)
		}
	}
	if out := d.Must(t, "exec", "keeper", "cat", "/data/f"); out != "before\n" {
		t.Errorf("volume of a container that outlived its daemon: %q", out)
	}
	d.Must(t, "rm", "-f", "-v", "keeper", "idle")
	d.Must(t, "volume", "rm", "kept", "idlevol")
}
