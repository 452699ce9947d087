package volume_test

import (
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

// TestAsDockerd runs the same storage commands against a private dockerd
// 20.10 and berthd and requires the same output, volume paths and ids
// aside.
func TestAsDockerd(t *testing.T) {
	b := daemon(t)
	dd := dockerd.Start(t, dockerd.Options{CgroupParent: "/" + "berth-vol-cmp"})
	dd.Must(t, "load", "-i", images.Busybox(t).Archive)
	host := t.TempDir()
	paths := regexp.MustCompile(`/tmp/b[dt][0-9]+/data/volumes/`)
	ids := regexp.MustCompile(`[0-9a-f]{64}`)
	// dockerd's init layer puts other files in /etc (and so in a volume
	// filled from it): sizes differ; its mounts come in map order.
	space := regexp.MustCompile(`Total reclaimed space: .*`)
	norm := func(s string) string {
		s = ids.ReplaceAllString(paths.ReplaceAllString(s, "<root>/"), "<id>")
		s = space.ReplaceAllString(s, "Total reclaimed space: N")
		ls := strings.Split(s, "\n")
		sort.Strings(ls)
		return strings.Join(ls, "\n")
	}
	type runner func(args ...string) (string, error)
	engines := []struct {
		name string
		run  runner
	}{{"dockerd", func(args ...string) (string, error) {
		// The same CLI for both: messages differ between CLI versions.
		out, err := exec.Command(berthd.DockerBinary, append([]string{"-H", dd.Host}, args...)...).CombinedOutput()
		return string(out), err
	}}, {"berthd", b.Docker}}
	steps := [][]string{
		{"volume", "create", "--label", "a=b", "cmpvol"},
		{"volume", "create", "cmp2"},
		{"volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "cmp3"},
		{"volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}} {{.Mountpoint}} {{json .Labels}} {{json .Options}}", "cmpvol", "cmp2", "cmp3"},
		{"volume", "ls"},
		{"volume", "ls", "--format", "{{.Name}}|{{.Driver}}|{{.Labels}}|{{.Mountpoint}}"},
		{"create", "--name", "cmpc", "-v", "cmpvol:/data", "-v", host + ":/b:ro", "-v", host + ":/c:rshared,z",
			"--mount", "type=volume,src=cmp4,dst=/m", "--mount", "type=bind,src=" + host + ",dst=/n,readonly",
			"--mount", "type=tmpfs,dst=/t,tmpfs-size=1048576", "--tmpfs", "/u:size=2m", "busybox", "true"},
		{"inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Source}} {{.Destination}} {{.Driver}} {{.Mode}} {{.RW}} {{.Propagation}}\n{{end}}", "cmpc"},
		// (docker 20.10 sends -v's binds in map order.)
		{"inspect", "-f", "{{range .HostConfig.Binds}}{{.}}\n{{end}}{{json .HostConfig.Tmpfs}} {{json .Config.Volumes}}", "cmpc"},
		{"ps", "-a", "--filter", "volume=cmp4", "--format", "{{.Names}}"},
		{"run", "--name", "mk", "busybox", "sh", "-c", "mkdir /vol && echo x > /vol/f"},
		{"commit", "--change", "VOLUME /vol", "mk", "cmpimg"},
		{"run", "--name", "iv", "cmpimg", "cat", "/vol/f"},
		{"inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Source}} {{.Destination}} {{.Driver}} {{.Mode}} {{.RW}} {{.Propagation}}{{end}} {{json .Config.Volumes}}", "iv"},
		{"rm", "-v", "mk", "iv"},
		{"rmi", "cmpimg"},
		{"volume", "rm", "cmpvol"},
		{"volume", "rm", "nosuch"},
		{"rm", "cmpc"},
		{"volume", "ls", "-q", "--filter", "dangling=true"},
		{"volume", "rm", "cmpvol", "cmp2", "cmp3", "cmp4"},
		{"run", "--rm", "-v", "/etc:/x:bogus", "busybox", "true"},
		{"run", "--rm", "--mount", "type=bind,src=/no/such/path,dst=/x", "busybox", "true"},
		{"run", "--rm", "-v", "cmp5:/etc", "busybox", "ls", "/etc/passwd"},
		{"volume", "prune", "-f"},
	}
	for _, step := range steps {
		var outs [2]string
		for i, e := range engines {
			out, _ := e.run(step...)
			outs[i] = norm(out)
		}
		if outs[0] != outs[1] {
			t.Errorf("docker %s:\ndockerd: %q\nberthd:  %q", strings.Join(step, " "), outs[0], outs[1])
		}
	}
}
