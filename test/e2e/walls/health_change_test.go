package walls_test

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
)

// TestHealthcheckChange: `commit --change` and `import --change` take
// HEALTHCHECK with its flags, the image carries it, and its containers
// are probed with it.
func TestHealthcheckChange(t *testing.T) {
	d := daemon(t)
	d.Must(t, "run", "--name", "base", "busybox", "touch", "/ready")
	d.Must(t, "commit", "--change", "HEALTHCHECK --interval=1s --timeout=3s --retries=2 CMD test -e /ready", "base", "hc:commit")
	if out := d.Must(t, "inspect", "-f", "{{json .Config.Healthcheck}}", "hc:commit"); strings.TrimSpace(out) != `{"Test":["CMD-SHELL","test -e /ready"],"Interval":1000000000,"Timeout":3000000000,"Retries":2}` {
		t.Errorf("committed image's Healthcheck: %s", out)
	}
	d.Must(t, "run", "-d", "--name", "probed", "hc:commit", "sleep", "1000")
	waitHealth(t, d, "probed", container.Healthy)

	// import: the exported filesystem with a health check that fails.
	tarball := d.Must(t, "export", "base")
	out, err := d.DockerWith("docker", []byte(tarball), "import", "--change", `HEALTHCHECK --interval=1s --retries=1 CMD ["/bin/false"]`, "--change", `CMD ["sleep", "1000"]`, "-", "hc:import")
	if err != nil {
		t.Fatalf("import: %v: %s", err, out)
	}
	if out := d.Must(t, "inspect", "-f", "{{json .Config.Healthcheck.Test}}", "hc:import"); strings.TrimSpace(out) != `["CMD","/bin/false"]` {
		t.Errorf("imported image's Healthcheck: %s", out)
	}
	d.Must(t, "run", "-d", "--name", "failing", "hc:import")
	waitHealth(t, d, "failing", container.Unhealthy)

	if out, code := docker(t, d, "commit", "--change", "HEALTHCHECK --interval=soon CMD true", "base"); code == 0 || !strings.Contains(out, "interval") {
		t.Errorf("bad HEALTHCHECK change: %d %q", code, out)
	}
}
