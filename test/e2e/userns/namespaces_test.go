package userns_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestRemapNamespaces: the namespace options work in a remapped
// container, joining another remapped container's user namespace with
// its PID or IPC namespace, as dockerd.
func TestRemapNamespaces(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	user, uid, gid := remapUser(t)
	d := remapDaemon(t, user)
	mapped := fmt.Sprintf("0 %d 65536", uid)
	uidMap := func(out string) string { return strings.Join(strings.Fields(out), " ") }

	d.Must(t, "run", "-d", "--name", "donor", "--ipc", "shareable", "busybox", "sleep", "1000")
	for _, c := range []struct {
		args []string
		cmd  string
		want string
	}{
		{[]string{"--pid", "container:donor"}, "cat /proc/self/uid_map; ps -o comm | grep -c sleep", mapped + " 1"},
		{[]string{"--ipc", "container:donor"}, "cat /proc/self/uid_map", mapped},
		{[]string{"--network", "container:donor"}, "cat /proc/self/uid_map", mapped},
		{[]string{"--network", "none"}, "cat /proc/self/uid_map; ls /sys/class/net", mapped + " lo"},
		{nil, "cat /proc/self/uid_map; ls /sys/class/net", mapped + " eth0 lo"},
		{[]string{"--network", "host"}, "cat /proc/self/uid_map; test -e /sys/class/net/lo && echo sys", mapped + " sys"},
		{[]string{"--ipc", "host"}, "cat /proc/self/uid_map; test -d /dev/mqueue && echo mq", mapped + " mq"},
		{[]string{"--read-only", "--init"}, "cat /proc/self/uid_map; touch /x 2>/dev/null || echo ro", mapped + " ro"},
		{[]string{"--user", "1000:1000"}, "id -u; touch /tmp/t && stat -c %u /tmp/t", "1000 1000"},
		{nil, "echo 10.9.9.9 extra >> /etc/hosts && grep -c extra /etc/hosts; stat -c %u:%g /etc/hostname /etc/resolv.conf", "1 0:0 0:0"},
	} {
		out, code := docker(t, d, append(append([]string{"run", "--rm"}, c.args...), "busybox", "sh", "-c", c.cmd)...)
		if code != 0 || uidMap(out) != c.want {
			t.Errorf("run %v: %d %q, want %q\n%s", c.args, code, out, c.want, tail(d.Log(), 1500))
		}
	}
	// The host's PID namespace needs the host's user namespace.
	if out, code := docker(t, d, "run", "--rm", "--pid", "host", "busybox", "true"); code != 125 || !strings.Contains(out, "cannot share the host PID namespace when user namespaces are enabled") {
		t.Errorf("--pid host: %d %q", code, out)
	}
	if out := d.Must(t, "run", "--rm", "--pid", "host", "--userns", "host", "busybox", "sh", "-c", "cat /proc/self/uid_map; test -d /proc/1 && echo host"); uidMap(out) != "0 0 4294967295 host" {
		t.Errorf("--pid host --userns host: %q", out)
	}
	// A volume filled from the image at first use: the image's owners
	// inside, the range's on the host.
	if out := d.Must(t, "run", "--rm", "-v", "etcvol:/etc", "busybox", "stat", "-c", "%u:%g", "/etc/passwd"); strings.TrimSpace(out) != "0:0" {
		t.Errorf("populated volume inside: %q", out)
	}
	mp := strings.TrimSpace(d.Must(t, "volume", "inspect", "-f", "{{.Mountpoint}}", "etcvol"))
	if got := owner(t, filepath.Join(mp, "passwd")); got != fmt.Sprintf("%d:%d", uid, gid) {
		t.Errorf("populated volume on the host: %s", got)
	}

	// A user network: embedded DNS and sysctls in the namespace berthd made.
	d.Must(t, "network", "create", "remapnet")
	d.Must(t, "run", "-d", "--name", "peer", "--network", "remapnet", "busybox", "sleep", "1000")
	if out, code := docker(t, d, "run", "--rm", "--network", "remapnet", "busybox", "sh", "-c", "nslookup peer >/dev/null && echo ok; cat /proc/sys/net/ipv4/ip_unprivileged_port_start"); code != 0 || uidMap(out) != "ok 0" {
		t.Errorf("user network: %d %q", code, out)
	}
	d.Must(t, "rm", "-f", "peer", "donor")
	d.Must(t, "network", "rm", "remapnet")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
