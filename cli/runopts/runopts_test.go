package runopts

import (
	"testing"

	"github.com/spf13/pflag"
)

func parse(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	o := AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o.Parse(fs, fs.Args())
}

func TestParseIntoConfig(t *testing.T) {
	cfg, err := parse(t, "-it", "-e", "A=1", "-v", "/data", "-v", "/h:/c:ro", "--tmpfs", "/run:size=1m",
		"-p", "127.0.0.1:8080:80", "--pids-limit", "5", "--init", "--stop-timeout", "3", "--entrypoint", "",
		"busybox", "echo", "hi")
	if err != nil {
		t.Fatal(err)
	}
	c, h := cfg.Config, cfg.HostConfig
	if c.Image != "busybox" || len(c.Cmd) != 2 || !c.Tty || !c.OpenStdin || !c.StdinOnce || !c.AttachStdin {
		t.Fatalf("config: %+v", c)
	}
	if len(c.Entrypoint) != 1 || c.Entrypoint[0] != "" {
		t.Fatalf("--entrypoint \"\" must clear the entrypoint: %q", c.Entrypoint)
	}
	if _, ok := c.Volumes["/data"]; !ok || len(h.Binds) != 1 || h.Binds[0] != "/h:/c:ro" || h.Tmpfs["/run"] != "size=1m" {
		t.Fatalf("volumes %v binds %v tmpfs %v", c.Volumes, h.Binds, h.Tmpfs)
	}
	if len(h.PortBindings) != 1 || *h.PidsLimit != 5 || !*h.Init || *c.StopTimeout != 3 {
		t.Fatalf("host config: %+v", h)
	}
}

func TestParseRejects(t *testing.T) {
	for _, args := range [][]string{
		{"--rm", "--restart", "always", "busybox"},
		{"--no-healthcheck", "--health-cmd", "x", "busybox"},
		{"--device", "a:b:c:d", "busybox"},
		{"--security-opt", "bogus", "busybox"},
		{"--tmpfs", "relative", "busybox"},
	} {
		if _, err := parse(t, args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
