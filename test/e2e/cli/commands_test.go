package cli_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// newestDocker is the docker CLI users run: the first on PATH (this
// machine's 28), which may be newer than the 20.10 the comparisons with
// dockerd use.
func newestDocker(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("docker")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCommandsAsDocker: every subcommand of docker's container, image,
// network, volume and system groups is one of berth's too (swarm's alone
// excepted), so a script written for docker finds its verbs.
func TestCommandsAsDocker(t *testing.T) {
	swarmOnly := map[string]bool{"volume update": true}
	for _, group := range []string{"container", "image", "network", "volume", "system"} {
		theirs := subcommands(t, newestDocker(t), group)
		ours := subcommands(t, berthBin, group)
		if len(theirs) == 0 {
			t.Fatalf("docker %s --help lists no commands", group)
		}
		for _, c := range theirs {
			if !slices.Contains(ours, c) && !swarmOnly[group+" "+c] {
				t.Errorf("berth %s lacks %q (berth has %v)", group, c, ours)
			}
		}
	}
}

// subcommands lists the commands `bin group --help` shows: the first word
// of each indented line of its "Commands:" or "Available Commands:" block.
func subcommands(t *testing.T, bin, group string) []string {
	t.Helper()
	out, err := exec.Command(bin, group, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s --help: %v\n%s", bin, group, err, out)
	}
	var cmds []string
	in := false
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasSuffix(l, "Commands:"):
			in = true
		case in && strings.TrimSpace(l) == "":
			in = false
		case in && strings.HasPrefix(l, "  "):
			cmds = append(cmds, strings.Fields(l)[0])
		}
	}
	return cmds
}

// TestFlagsAsDocker: the commands take every flag docker's take, but
// for those listed here, each for its reason.
func TestFlagsAsDocker(t *testing.T) {
	missing := map[string][]string{
		// Link-local addresses and the API socket mount are not built.
		"run":    {"--link-local-ip", "--use-api-socket"},
		"create": {"--link-local-ip", "--use-api-socket"},
		// No checkpoint/restore (no criu).
		"start": {"--checkpoint", "--checkpoint-dir"},
		// docker's experimental tree view.
		"images": {"--tree"},
		// Per-platform selection in a multi-platform image store.
		"push": {"--platform"}, "rmi": {"--platform"}, "save": {"--platform"}, "load": {"--platform"}, "history": {"--platform"},
		// Resource limits, hosts and options of build containers, which
		// the builder does not take (berthd refuses them too).
		"build": {"--add-host", "--cgroup-parent", "--cpu-period", "--cpu-quota", "--cpu-shares", "--cpuset-cpus", "--cpuset-mems",
			"--isolation", "--memory", "--memory-swap", "--security-opt", "--shm-size", "--squash", "--ulimit"},
		// Swarm cluster volumes.
		"volume create": {"--availability", "--group", "--limit-bytes", "--required-bytes", "--scope", "--secret", "--sharing",
			"--topology-preferred", "--topology-required", "--type"},
		"volume ls": {"--cluster"},
		// Swarm and IPAM options not built.
		"network create":  {"--aux-address", "--config-from", "--config-only", "--ingress", "--ipam-opt", "--ipv4"},
		"network connect": {"--driver-opt", "--gw-priority", "--link-local-ip"},
		// Where "docker" is 20.10's CLI: the kubernetes orchestrator,
		// and stop's and restart's --time, which berth hides as 28 does.
		"version": {"--kubeconfig"}, "stop": {"--time"}, "restart": {"--time"},
	}
	docker := newestDocker(t)
	for _, c := range []string{"run", "create", "exec", "ps", "logs", "start", "stop", "restart", "kill", "rm", "attach",
		"inspect", "top", "stats", "wait", "rename", "pause", "cp", "export", "commit", "update", "port", "diff", "events",
		"info", "version", "images", "pull", "push", "tag", "rmi", "save", "load", "import", "history", "build", "login",
		"logout", "image prune", "container prune", "system prune", "system df", "volume create", "volume ls", "volume rm",
		"volume prune", "volume inspect", "network create", "network ls", "network connect", "network disconnect",
		"network rm", "network inspect", "network prune", "builder prune"} {
		args := strings.Fields(c)
		ours := flagNames(t, berthBin, args)
		for _, f := range flagNames(t, docker, args) {
			if !slices.Contains(ours, f) && !slices.Contains(missing[c], f) {
				t.Errorf("berth %s lacks %s", c, f)
			}
		}
	}
}

// flagNames lists the long flags `bin args --help` shows.
func flagNames(t *testing.T, bin string, args []string) []string {
	t.Helper()
	out, err := exec.Command(bin, append(args, "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v --help: %v\n%s", bin, args, err, out)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(strings.TrimSpace(l))
		for _, w := range f[:min(len(f), 2)] {
			if strings.HasPrefix(w, "--") {
				names = append(names, strings.TrimRight(w, ","))
			}
		}
	}
	return names
}
