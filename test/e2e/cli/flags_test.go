package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// TestCreateFlagsAsDocker creates one container with berth and one with
// docker from the same flags and requires the daemon to have recorded the
// same Config and HostConfig as dockerd records for docker's request:
// berth parses run/create flags as Docker's CLI does, and berthd records
// a request as dockerd does.
func TestCreateFlagsAsDocker(t *testing.T) { both(t, testCreateFlagsAsDocker) }

func testCreateFlagsAsDocker(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	labelFile := filepath.Join(dir, "labels")
	os.WriteFile(envFile, []byte("# comment\nFROMFILE=1\nPASSED\n"), 0o644)
	os.WriteFile(labelFile, []byte("filelabel=x\n"), 0o644)
	t.Setenv("PASSED", "through")
	flagSets := [][]string{
		{"-e", "A=1", "-e", "B", "--env-file", envFile, "-l", "a=b", "--label-file", labelFile, "-w", "/tmp",
			"-u", "1:2", "--entrypoint", "sh", "--restart", "on-failure:3", "--init", "--stop-signal", "SIGUSR1",
			"--stop-timeout", "7", "-h", "host", "--domainname", "example.org", "-i", "-t", "-a", "stdout"},
		{"--memory", "64m", "--memory-swap", "128m", "--memory-reservation", "32m", "--cpus", "0.5", "--cpu-shares", "512",
			"--cpuset-cpus", "0", "--pids-limit", "50", "--shm-size", "32m", "--ulimit", "nofile=100:200",
			"--oom-score-adj", "100", "--blkio-weight", "300", "--memory-swappiness", "10"},
		{"-v", "/tmp:/hosttmp:ro", "-v", "/data", "--mount", "type=tmpfs,target=/mnt/t,tmpfs-size=1m",
			"--mount", "type=bind,source=/etc,target=/hostetc,readonly", "--tmpfs", "/run:size=1m", "--read-only"},
		{"-p", "8080:80", "-p", "127.0.0.1:9000-9001:9000-9001/udp", "--expose", "7000-7001", "-P",
			"--dns", "1.1.1.1", "--dns-search", "example.org", "--dns-option", "ndots:2", "--add-host", "h:10.0.0.1"},
		{"--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "--security-opt", "no-new-privileges",
			"--security-opt", "label=disable", "--device", "/dev/null:/dev/mynull:rw", "--group-add", "10",
			"--log-driver", "json-file", "--log-opt", "max-size=1m", "--sysctl", "net.ipv4.ip_forward=1"},
		{"--health-cmd", "true", "--health-interval", "5s", "--health-retries", "2", "--health-timeout", "3s",
			"--health-start-period", "1s", "--ipc", "private", "--pid", "host", "--uts", "host", "--privileged"},
		{"--no-healthcheck", "--network", "none", "--rm", "--entrypoint", ""},
	}
	for i, flags := range flagSets {
		args := append(append([]string{}, flags...), "busybox", "echo", "x y")
		bname, dname := testutil_unique(t)+"-b", testutil_unique(t)+"-d"
		rname := testutil_unique(t) + "-ref"
		bout, bcode := berthRun(nil, append([]string{"create", "--name", bname}, args...)...)
		dout, dcode := dockerRun(nil, append([]string{"create", "--name", dname}, args...)...)
		rout, rcode := runOn(reference(), dockerCLI, nil, append([]string{"create", "--name", rname}, args...)...)
		t.Cleanup(func() {
			dockerRun(nil, "rm", "-f", bname, dname)
			runOn(reference(), dockerCLI, nil, "rm", "-f", rname)
		})
		if bcode != 0 || dcode != 0 || rcode != 0 {
			t.Fatalf("set %d: create: berth exit %d %s, docker exit %d %s, docker on dockerd exit %d %s",
				i, bcode, bout.stderr, dcode, dout.stderr, rcode, rout.stderr)
		}
		for _, part := range []string{"Config", "HostConfig"} {
			want := inspectJSON(t, reference(), rname, part)
			for _, c := range []struct{ cli, name string }{{"berth", bname}, {"docker", dname}} {
				got := inspectJSON(t, cur, c.name, part)
				for _, k := range diffKeys(got, want) {
					gj, _ := json.Marshal(got[k])
					wj, _ := json.Marshal(want[k])
					t.Errorf("set %d (%s): %s created by %s on %s: %s is %s, dockerd records %s",
						i, strings.Join(flags, " "), part, c.cli, cur.name, k, gj, wj)
				}
			}
		}
	}
	// Invalid values are refused before the daemon sees them, as docker.
	for _, bad := range [][]string{
		{"--restart", "sometimes"}, {"--memory", "lots"}, {"-e", "=x"}, {"--device", "a:b:c:d"},
		{"--restart", "always", "--rm"}, {"--no-healthcheck", "--health-cmd", "true"}, {"-a", "stdfoo"},
	} {
		b, bc := berthRun(nil, append(append([]string{"create"}, bad...), "busybox")...)
		d, dc := dockerRun(nil, append(append([]string{"create"}, bad...), "busybox")...)
		r, rc := runOn(reference(), dockerCLI, nil, append(append([]string{"create"}, bad...), "busybox")...)
		if bc != dc || bc == 0 || dc != rc || d.stderr != r.stderr {
			t.Errorf("create %v: berth exit %d (%s), docker exit %d (%s), docker on dockerd exit %d (%s)",
				bad, bc, b.stderr, dc, d.stderr, rc, r.stderr)
		}
	}
}

// inspectJSON is one part of a container's inspect output, without the
// fields that differ between any two containers.
func inspectJSON(t *testing.T, e engine, name, part string) map[string]any {
	t.Helper()
	out, code := runOn(e, dockerCLI, nil, "inspect", "-f", "{{json ."+part+"}}", name)
	if code != 0 {
		t.Fatalf("inspect %s on %s: %s", name, e.name, out.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out.stdout), &m); err != nil {
		t.Fatal(err)
	}
	if part == "Config" && m["Hostname"] != "host" {
		delete(m, "Hostname")
	}
	// docker 20.10 orders -e values without "=" at random (a map walk).
	if env, ok := m["Env"].([]any); ok {
		sort.Slice(env, func(i, j int) bool { return env[i].(string) < env[j].(string) })
	}
	// berthd's runtime has its own name, and it masks one more path than
	// dockerd 20.10 (as newer dockerd does; see container/spec).
	if m["Runtime"] == "berth-runtime" {
		m["Runtime"] = "runc"
	}
	if mp, ok := m["MaskedPaths"].([]any); ok && len(mp) > 0 && mp[len(mp)-1] == "/sys/devices/virtual/powercap" {
		m["MaskedPaths"] = mp[:len(mp)-1]
	}
	// The moby client names capabilities with their CAP_ prefix (as docker
	// 23 and later send them); docker 20.10 sent them as typed.
	for _, k := range []string{"CapAdd", "CapDrop"} {
		if caps, ok := m[k].([]any); ok {
			for i, c := range caps {
				caps[i] = strings.TrimPrefix(c.(string), "CAP_")
			}
		}
	}
	return m
}

// diffKeys are the keys whose values differ between a and b.
func diffKeys(a, b map[string]any) []string {
	var keys []string
	for k := range a {
		if !reflect.DeepEqual(a[k], b[k]) {
			keys = append(keys, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
