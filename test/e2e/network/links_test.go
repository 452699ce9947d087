package network_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestLegacyLinks: --link name:alias on the default bridge gives the
// linked container's /etc/hosts line (alias, hostname, name) and
// dockerd's environment variables (ports, ranges, name, env); inspect
// shows HostConfig.Links as "/name:/container/alias"; a missing or
// stopped target fails with dockerd's messages; on a user network a
// link is an alias only the linking container resolves.
func TestLegacyLinks(t *testing.T) {
	d, _ := startDaemon(t)
	t.Cleanup(func() {
		d.Docker("rm", "-f", "db", "web", "dead", "late", "u1", "withlink", "joiner")
		d.Docker("network", "rm", "lnet")
	})
	d.Must(t, "run", "-d", "--name", "db", "--hostname", "dbhost", "-e", "SECRET=s3", "--expose", "5432", "--expose", "5433", "--expose", "53/udp",
		"busybox", "sh", "-c", "echo linked > /tmp/i; exec nc -ll -p 5432 -e cat /tmp/i")
	dbIP := inspect(t, d, "db").NetworkSettings.Networks["bridge"].IPAddress
	out := d.Must(t, "run", "--name", "web", "--link", "db:dba", "busybox", "sh", "-c", "cat /etc/hosts; env; nc -w 3 dba 5432 </dev/null")
	for _, want := range []string{
		dbIP + "\tdba dbhost db\n",
		// The lowest port is the default one, whatever its protocol.
		"DBA_PORT=udp://" + dbIP + ":53\n",
		"DBA_PORT_5432_TCP=tcp://" + dbIP + ":5432\n",
		"DBA_PORT_5432_TCP_ADDR=" + dbIP + "\n",
		"DBA_PORT_5432_TCP_PORT=5432\n",
		"DBA_PORT_5432_TCP_PROTO=tcp\n",
		"DBA_PORT_5433_TCP_ADDR=" + dbIP + "\n",
		"DBA_PORT_53_UDP=udp://" + dbIP + ":53\n",
		"DBA_PORT_5432_TCP_START=tcp://" + dbIP + ":5432\n",
		"DBA_PORT_5432_TCP_PORT_END=5433\n",
		"DBA_NAME=/web/dba\n",
		"DBA_ENV_SECRET=s3\n",
		"linked\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("linked container lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "DBA_ENV_PATH=") {
		t.Errorf("PATH of the linked container passed on:\n%s", out)
	}
	var hc []struct{ HostConfig struct{ Links []string } }
	if err := json.Unmarshal([]byte(d.Must(t, "inspect", "web")), &hc); err != nil || len(hc) != 1 {
		t.Fatalf("inspect web: %v", err)
	}
	if l := hc[0].HostConfig.Links; len(l) != 1 || l[0] != "/db:/web/dba" {
		t.Errorf("HostConfig.Links %q, want [/db:/web/dba]", l)
	}
	// Without an alias, through the berth CLI: the name is the alias.
	if out, err := berth(t, d, "run", "--rm", "--link", "db", "busybox", "sh", "-c", "cat /etc/hosts; env"); err != nil ||
		!strings.Contains(out, dbIP+"\tdb dbhost\n") || !strings.Contains(out, "DB_PORT=udp://"+dbIP+":53\n") {
		t.Errorf("berth run --link db: %v\n%s", err, out)
	}

	if out, err := d.Docker("run", "--rm", "--link", "nothere:x", "busybox", "true"); err == nil || !strings.Contains(out, "could not get container for nothere") {
		t.Errorf("--link to a missing container: %v %s", err, out)
	}
	d.Must(t, "create", "--name", "dead", "busybox", "true")
	d.Must(t, "create", "--name", "late", "--link", "dead:d", "busybox", "true")
	if out, err := d.Docker("start", "late"); err == nil || !strings.Contains(out, "Cannot link to a non running container: /dead AS /late/d") {
		t.Errorf("start with a link to a stopped container: %v %s", err, out)
	}
	// (docker's own CLI refuses this one before asking.)
	if out, err := berth(t, d, "run", "--rm", "--network", "host", "--link", "db:x", "busybox", "true"); err == nil || !strings.Contains(out, "host type networking can't be used with links") {
		t.Errorf("--link with host networking: %v %s", err, out)
	}

	// A user network: the link is the linking container's alias.
	tn := newTestNet(t, "bl")
	d.Must(t, "network", "create", "--subnet", tn.Subnet.String(), "-o", "com.docker.network.bridge.name="+tn.Bridge, "lnet")
	d.Must(t, "run", "-d", "--name", "u1", "--network", "lnet", "busybox", "sleep", "600")
	u1 := inspect(t, d, "u1").NetworkSettings.Networks["lnet"].IPAddress
	d.Must(t, "run", "-d", "--name", "withlink", "--network", "lnet", "--link", "u1:buddy", "busybox", "sleep", "600")
	if out := d.Must(t, "exec", "withlink", "nslookup", "buddy", "127.0.0.11"); !strings.Contains(out, u1) {
		t.Errorf("buddy from the linking container:\n%s", out)
	}
	if out, _ := d.Docker("run", "--rm", "--network", "lnet", "busybox", "nslookup", "buddy", "127.0.0.11"); strings.Contains(out, u1) {
		t.Errorf("another container resolved the private alias buddy:\n%s", out)
	}
	// network connect --link: the same, for a container joining later.
	d.Must(t, "run", "-d", "--name", "joiner", "busybox", "sleep", "600")
	if out, err := berth(t, d, "network", "connect", "--link", "u1:pal", "lnet", "joiner"); err != nil {
		t.Fatalf("berth network connect --link: %v %s", err, out)
	}
	if out := d.Must(t, "exec", "joiner", "nslookup", "pal", "127.0.0.11"); !strings.Contains(out, u1) {
		t.Errorf("pal from the container connected with --link:\n%s", out)
	}
	if out, err := berth(t, d, "network", "connect", "--link", "db:x", "bridge", "u1"); err == nil || !strings.Contains(out, "links are only supported for user-defined networks") {
		t.Errorf("connect --link to the default bridge: %v %s", err, out)
	}
	var wl []struct {
		HostConfig      struct{ Links []string }
		NetworkSettings struct {
			Networks map[string]struct{ Links []string }
		}
	}
	if err := json.Unmarshal([]byte(d.Must(t, "inspect", "withlink")), &wl); err != nil || len(wl) != 1 {
		t.Fatalf("inspect withlink: %v", err)
	}
	if l := wl[0].NetworkSettings.Networks["lnet"].Links; len(l) != 1 || l[0] != "u1:buddy" || len(wl[0].HostConfig.Links) != 0 {
		t.Errorf("links on a user network: endpoint %q, HostConfig %q", l, wl[0].HostConfig.Links)
	}
}
