package cli_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestCommandsAsDocker: every subcommand of docker's container, image,
// network, volume and system groups is one of berth's too (swarm's alone
// excepted), so a script written for docker finds its verbs.
func TestCommandsAsDocker(t *testing.T) {
	swarmOnly := map[string]bool{"volume update": true}
	for _, group := range []string{"container", "image", "network", "volume", "system"} {
		theirs := subcommands(t, dockerCLI, group)
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
