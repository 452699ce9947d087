package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/bench"
	"github.com/berth-dev/berth/internal/testutil/images"
)

type netFlags struct {
	startN, throughputN, dnsN int
	lookups                   int
	duration                  time.Duration
}

// runNetwork measures networking: start with a published port, wrk
// through a published port (against the same server on the host network)
// and DNS between containers; berthd vs a private dockerd and podman,
// each container on a user-defined bridge network of its engine.
func runNetwork(b *strings.Builder, f engineFlags, nf netFlags, work, only string) error {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return fmt.Errorf("network suite: wrk not found (make bench installs it)")
	}
	bin, err := filepath.Abs(f.binDir)
	if err != nil {
		return err
	}
	// The server is the same static binary in every image and on the host.
	server := filepath.Join(work, "benchnet")
	build := exec.Command("go", "build", "-o", server, "./bench/cmd/benchnet")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build benchnet: %v\n%s", err, out)
	}
	img, err := images.CachedScratch(server)
	if err != nil {
		return fmt.Errorf("benchnet image: %w", err)
	}
	cfg := bench.NetConfig{
		EngineConfig: bench.EngineConfig{BinDir: bin, Archive: img.Archive, BerthdArgs: f.berthdArgs},
		Server:       server, Image: "benchnet", Wrk: wrk, Duration: nf.duration,
	}
	hostAddr := hostIPv4()
	before := rulesetHas()
	b.WriteString("## Network: berthd vs dockerd 20.10 vs podman vs the host network\n\n")
	fmt.Fprintf(b, "Every container runs bench/cmd/benchnet (a static Go HTTP server, FROM scratch) on a user-defined bridge network of its engine (berth 10.199.1.0/24, docker 10.199.2.0/24, podman 10.199.3.0/24 with its own --network-config-dir). docker = a private dockerd 20.10 with `--iptables=false`: published ports go through its userland proxy (docker-proxy), as they do for 127.0.0.1 with iptables on too. podman 4.3 = netavark's DNAT (iptables) and aardvark-dns. host = the same server as a host process, the physical limit. For throughput, wrk (one thread) is pinned to CPU 0 and the server to CPU 1 (taskset; `--cpuset-cpus` in containers); %s per wrk run. The rates follow whatever else the machine runs; the CPU tables count the CPU time wrk, the server and docker-proxy spent per request and per MiB (from /proc/PID/stat; kernel work in their context, as the loopback's, the veth's and the bridge's receive path, included; work deferred to ksoftirqd not), which other load skews much less.\n\n", nf.duration)
	if slices.Contains(f.berthdArgs, "--no-socket-redirect") {
		b.WriteString("berth's published ports: nftables DNAT only (berthd `--no-socket-redirect`).\n\n")
	} else {
		b.WriteString("berth's published ports: nftables DNAT, and for the host's own TCP connections berthd's socket redirect (cgroup/connect4 and connect6 BPF programs connecting straight to the container, no NAT; berthd logs whether it could load them).\n\n")
	}
	if len(f.berthdArgs) > 0 {
		fmt.Fprintf(b, "berthd flags: `%s`.\n\n", strings.Join(f.berthdArgs, " "))
	}
	netOnly := filter(bench.NetworkSystems(cfg, false), only)
	withHost := filter(bench.NetworkSystems(cfg, true), only)
	if nf.startN > 0 {
		if err := runSuite(b, nf.startN, work, netOnly, []bench.Scenario{bench.NetStartScenario{Config: cfg}}); err != nil {
			return err
		}
	}
	if nf.throughputN > 0 {
		addrs := []string{"127.0.0.1"}
		if hostAddr != "" {
			addrs = append(addrs, hostAddr)
		}
		for _, a := range addrs {
			if err := runRateSuite(b, nf.throughputN, work, withHost, bench.ThroughputScenario{Config: cfg, Addr: a}); err != nil {
				return err
			}
		}
	}
	if nf.dnsN > 0 {
		if err := runSuite(b, nf.dnsN, work, netOnly, []bench.Scenario{bench.DNSScenario{Config: cfg, N: nf.lookups}}); err != nil {
			return err
		}
	}
	// The engines must leave no rule for their subnets behind.
	if after := rulesetHas(); after != "" && before == "" {
		fmt.Fprintf(b, "**Left behind in the host's firewall:** %s\n\n", after)
		fmt.Fprintf(os.Stderr, "network suite: rules left behind: %s\n", after)
	}
	return nil
}

// runRateSuite is runSuite for a throughput scenario: its table shows
// rates.
func runRateSuite(b *strings.Builder, n int, work string, systems []bench.System, sc bench.Scenario) error {
	loadBefore := loadavg()
	start := time.Now()
	results := bench.Run(bench.Config{N: n, WorkDir: work, Log: os.Stderr}, systems, []bench.Scenario{sc})
	fmt.Fprintf(b, "%s; took %s; load average %s before, %s after (other work on the machine skews the figures)\n\n",
		versions(systems), time.Since(start).Round(time.Second), loadBefore, loadavg())
	// Rates in one table, CPU costs (times, lower is better) in another.
	var rates, costs []bench.Result
	for _, r := range results {
		if _, ok := bench.RateUnits[r.Phase]; ok {
			rates = append(rates, r)
		} else {
			costs = append(costs, r)
		}
	}
	if err := bench.WriteRateMarkdown(b, n, systems, rates, bench.RateUnits); err != nil {
		return err
	}
	b.WriteString("\n")
	if len(costs) > 0 {
		if err := bench.WriteMarkdown(b, n, systems, costs); err != nil {
			return err
		}
		b.WriteString("\n")
	}
	return nil
}

// hostIPv4 is the first global IPv4 address of an up, non-loopback
// interface ("" if none).
func hostIPv4() string {
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return ""
}

// rulesetHas returns the lines of the host's nftables ruleset (which
// iptables-nft writes too) that name the bench's subnets.
func rulesetHas() string {
	out, err := exec.Command("nft", "list", "ruleset").Output()
	if err != nil {
		// Said, so that a missing nft is not read as a clean ruleset.
		return fmt.Sprintf("(nft list ruleset: %v)", err)
	}
	var hits []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "10.199.1.") || strings.Contains(l, "10.199.2.") || strings.Contains(l, "10.199.3.") {
			hits = append(hits, strings.TrimSpace(l))
		}
	}
	return strings.Join(hits, "; ")
}
