package testutil

import (
	"os/exec"
	"strings"
	"testing"
)

// KeepXtablesTables deletes, when the test ends, the built-in tables
// (ip/ip6 filter and nat) that iptables-nft made for the test and that
// hold no rule any more: the test leaves nftables as it found it.
func KeepXtablesTables(t testing.TB) {
	t.Helper()
	before, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		// Without the list, the tables it makes would be left behind.
		t.Fatalf("nft list tables: %v (the nftables package has nft)", err)
	}
	t.Cleanup(func() {
		for _, tb := range []string{"ip filter", "ip nat", "ip6 filter", "ip6 nat"} {
			if strings.Contains(string(before), "table "+tb+"\n") {
				continue
			}
			out, err := exec.Command("nft", append([]string{"list", "table"}, strings.Fields(tb)...)...).Output()
			if err != nil {
				continue
			}
			empty := true
			for _, l := range strings.Split(string(out), "\n") {
				l = strings.TrimSpace(l)
				if l != "" && l != "}" && !strings.HasPrefix(l, "table ") && !strings.HasPrefix(l, "chain ") && !strings.HasPrefix(l, "type ") {
					empty = false
				}
			}
			if empty {
				exec.Command("nft", append([]string{"delete", "table"}, strings.Fields(tb)...)...).Run()
			}
		}
	})
}
