package network_test

import (
	osexec "os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// kernelSCTP says whether the kernel opens SCTP sockets.
func kernelSCTP() bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// TestPublishSCTP: -p host:container/sctp. On a kernel with SCTP the
// port is reserved on the host and DNATed to the container (the rule is
// checked; busybox has no SCTP client to send through it); on a kernel
// without, the start fails saying so, and the rest is skipped for that
// reason.
func TestPublishSCTP(t *testing.T) {
	d, _ := startDaemon(t)
	t.Cleanup(func() { d.Docker("rm", "-f", "sc") })
	p := strconv.Itoa(freePort(t))
	out, err := d.Docker("run", "-d", "--name", "sc", "-p", p+":9000/sctp", "busybox", "sleep", "600")
	if !kernelSCTP() {
		if err == nil || !strings.Contains(out, "this kernel has no SCTP support") {
			t.Errorf("-p /sctp without kernel SCTP: %v %s", err, out)
		}
		t.Skip("the kernel has no SCTP sockets (socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) fails): no SCTP traffic to publish")
	}
	if err != nil {
		t.Fatalf("run -p %s:9000/sctp: %v %s", p, err, out)
	}
	if out := d.Must(t, "port", "sc"); out != "9000/sctp -> 0.0.0.0:"+p+"\n" {
		t.Errorf("docker port: %q", out)
	}
	rules, err := osexec.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Errorf("nft list ruleset: %v %s", err, rules)
	} else if !strings.Contains(string(rules), "sctp dport "+p) {
		t.Errorf("no sctp DNAT rule for %s:\n%s", p, rules)
	}
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP); err == nil {
		n, _ := strconv.Atoi(p)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: n}); err == nil {
			t.Errorf("sctp port %s not reserved on the host", p)
		}
		unix.Close(fd)
	}
}
