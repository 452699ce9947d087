package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SysHost is the network suite's baseline: the same server as a plain
// host process on the host's network, the physical limit of a published
// port.
const SysHost = "host"

// NetConfig is what the network scenarios need.
type NetConfig struct {
	EngineConfig
	// Server is the static benchnet binary (bench/cmd/benchnet); Archive
	// is its FROM-scratch image, loaded into every engine as Image.
	Server string
	Image  string
	// Wrk is the wrk binary.
	Wrk string
	// Duration of each wrk run.
	Duration time.Duration
}

// NetworkSystems returns berth, docker and podman (each container on a
// user-defined bridge network of its engine) and, with host, the server
// on the host network.
func NetworkSystems(cfg NetConfig, host bool) []System {
	var systems []System
	for _, s := range EngineSystems(cfg.EngineConfig) {
		if s.Name != SysBerthDocker {
			systems = append(systems, s)
		}
	}
	if host {
		systems = append(systems, System{Name: SysHost, Binary: cfg.Server, Anchor: true})
	}
	return systems
}

// netSubnets gives each engine a bridge subnet of its own, apart from the
// engines' default pools, so the three networks never overlap.
var netSubnets = map[string]string{SysBerth: "10.199.1.0/24", SysDocker: "10.199.2.0/24", SysPodman: "10.199.3.0/24"}

// netEngine is an engine with a user-defined bridge network of the bench.
type netEngine struct {
	*engine
	net    string
	image  string
	podNet string // podman's --network-config-dir, removed on stop
}

// startNetEngine starts the engine of env's system with cfg.Image loaded
// and a bridge network "<prefix>-net" on its subnet.
func startNetEngine(cfg NetConfig, env *Env) (*netEngine, error) {
	e, err := startEngine(cfg.EngineConfig, env.System.Name, env.Dir, env.Prefix)
	if err != nil {
		return nil, err
	}
	ne := &netEngine{engine: e, net: validName(env.Prefix) + "-net", image: cfg.Image}
	if env.System.Name == SysPodman {
		// Its own network definitions, not the host's /etc/containers.
		ne.podNet = filepath.Join(env.Dir, "podman-net")
		e.argv = append(e.argv, "--network-config-dir", ne.podNet)
	}
	if _, err := e.cli("network", "create", "--subnet", netSubnets[env.System.Name], ne.net); err != nil {
		ne.stop()
		return nil, err
	}
	return ne, nil
}

// stop removes the containers, the network and the engine.
func (ne *netEngine) stop() error {
	err := ne.removeAll()
	if _, nerr := ne.cli("network", "rm", ne.net); nerr != nil && err == nil && !strings.Contains(nerr.Error(), "not found") {
		err = nerr
	}
	if serr := ne.engine.stop(); serr != nil && err == nil {
		err = serr
	}
	if ne.podNet != "" {
		os.RemoveAll(ne.podNet)
	}
	return err
}

// serverCPU is the CPU the server is pinned to and clientCPU wrk's, so
// the client and the server never compete for one core; "" on a single
// CPU.
func serverCPU() string {
	if runtime.NumCPU() < 2 {
		return ""
	}
	return "1"
}

func clientCPU() string {
	if runtime.NumCPU() < 2 {
		return ""
	}
	return "0"
}

// runServer starts the benchnet server detached on ne's network,
// publishing hostPort on addr (empty: every address) to port 8080, pinned
// to the server CPU when pin is set.
func (ne *netEngine) runServer(name, addr string, hostPort int, pin bool) error {
	args := []string{"-d", "--name", name, "--network", ne.net, "-p", net.JoinHostPort(addr, strconv.Itoa(hostPort)) + ":8080"}
	if addr == "" {
		args[len(args)-1] = strconv.Itoa(hostPort) + ":8080"
	}
	if cpu := serverCPU(); pin && cpu != "" {
		args = append(args, "--cpuset-cpus", cpu)
	}
	_, err := ne.cli(ne.runArgs(append(args, ne.image, "serve")...)...)
	return err
}

// freePort returns a TCP port free on every address right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url until it answers 200 or ctx ends.
func waitHTTP(ctx context.Context, url string) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never answered: %w", url, err)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// NetStartScenario times `run -d --network <bridge> -p 127.0.0.1:P:8080`
// of the HTTP server: until the CLI returns, and until the published
// port answers HTTP. Removing the container is untimed.
type NetStartScenario struct{ Config NetConfig }

// Name says what runs.
func (NetStartScenario) Name() string {
	return "run -d --network <bridge> -p 127.0.0.1:P:8080 benchnet serve"
}

// Setup starts the engine with its network (untimed).
func (s NetStartScenario) Setup(env *Env) (Trial, error) {
	if env.System.Name == SysHost {
		return nil, errors.New("not applicable")
	}
	ne, err := startNetEngine(s.Config, env)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		ne.stop()
		return nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	once := func() (run, answer time.Duration, err error) {
		start := time.Now()
		if err := ne.runServer("bbstart", "127.0.0.1", port, false); err != nil {
			return 0, 0, err
		}
		run = time.Since(start)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := waitHTTP(ctx, url); err != nil {
			return 0, 0, err
		}
		answer = time.Since(start)
		_, err = ne.cli(append(append([]string{"rm", "-f"}, ne.rmFlags...), "bbstart")...)
		return run, answer, err
	}
	// One untimed run: the first container on a network pays for lazily
	// made state (the bridge device, firewall chains).
	if _, _, err := once(); err != nil {
		ne.stop()
		return nil, err
	}
	return &netTrial{ne: ne, run: func() ([]Sample, error) {
		run, answer, err := once()
		if err != nil {
			ne.removeAll()
			return nil, err
		}
		return []Sample{{Phase: "CLI returned", D: run}, {Phase: "port answers HTTP", D: answer}}, nil
	}}, nil
}

// netTrial owns one engine with its network.
type netTrial struct {
	ne       *netEngine
	run      func() ([]Sample, error)
	teardown func() error
}

func (t *netTrial) Run() ([]Sample, error) { return t.run() }

func (t *netTrial) Teardown() error {
	if t.teardown != nil {
		return t.teardown()
	}
	return t.ne.stop()
}

// Throughput phases. Their samples hold the time per unit (one request,
// one MiB) so medians and alternation work as for every other scenario;
// WriteRateMarkdown turns them back into rates.
const (
	PhaseRequests = "requests/s (GET /, 3-byte body, 16 connections)"
	PhaseTransfer = "MiB/s (GET /1m, 1 MiB body, 4 connections)"
	// A new connection per request: the NAT's connection setup (the
	// chains, a conntrack entry) or the proxy's second connection.
	PhaseConns = "connections/s (GET / with Connection: close, 8 at once)"
)

// RateUnits are the units of the rate phases, by phase.
var RateUnits = map[string]string{PhaseRequests: "req/s", PhaseTransfer: "MiB/s", PhaseConns: "conn/s"}

// CPU phases: the CPU time that wrk, the server and any proxy in the path
// (docker-proxy) spent per request and per MiB. On this shared machine
// the rates follow whatever else runs; the CPU cost per unit much less,
// and it is what the kernel path (NAT, bridge, veth) adds.
const (
	PhaseCPURequest = "CPU per request (wrk + server + proxy)"
	PhaseCPUMiB     = "CPU per MiB (wrk + server + proxy)"
	PhaseCPUConn    = "CPU per connection (wrk + server + proxy)"
)

// ThroughputScenario runs wrk (pinned to one CPU) against the server
// (pinned to the other) through a published port reached on Addr, or,
// for the host system, against the server listening on Addr directly.
type ThroughputScenario struct {
	Config NetConfig
	// Addr is the host address the client connects to.
	Addr string
}

// Name says where the client connects.
func (s ThroughputScenario) Name() string {
	return "wrk → published port on " + s.Addr
}

// Setup starts the engine and the server (untimed) and warms it up with
// one short wrk run.
func (s ThroughputScenario) Setup(env *Env) (Trial, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	base := "http://" + net.JoinHostPort(s.Addr, strconv.Itoa(port))
	t := &netTrial{}
	// pathPIDs are the processes on the server side of the path.
	var pathPIDs func() ([]int, error)
	if env.System.Name == SysHost {
		pid, stop, err := startHostServer(s.Config.Server, net.JoinHostPort(s.Addr, strconv.Itoa(port)))
		if err != nil {
			return nil, err
		}
		t.teardown = stop
		pathPIDs = func() ([]int, error) { return []int{pid}, nil }
	} else {
		ne, err := startNetEngine(s.Config, env)
		if err != nil {
			return nil, err
		}
		t.ne = ne
		if err := ne.runServer("bbhttp", "", port, true); err != nil {
			ne.stop()
			return nil, err
		}
		out, err := ne.cli("inspect", "-f", "{{.State.Pid}}", "bbhttp")
		pid, _ := strconv.Atoi(strings.TrimSpace(out))
		if err != nil || pid <= 0 {
			ne.stop()
			return nil, fmt.Errorf("server pid %q: %v", strings.TrimSpace(out), err)
		}
		pathPIDs = func() ([]int, error) {
			pids := []int{pid}
			// dockerd's userland proxy copies every byte: its CPU is
			// part of the path.
			for _, d := range ne.daemons() {
				for _, c := range children(d.PID) {
					if comm(c) == "docker-proxy" {
						pids = append(pids, c)
					}
				}
			}
			return pids, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitHTTP(ctx, base+"/"); err == nil {
		_, err = runWrk(s.Config.Wrk, base+"/", 16, time.Second)
	}
	if err != nil {
		t.Teardown()
		return nil, err
	}
	// measured runs wrk and returns its result with the CPU time wrk and
	// the path's processes spent meanwhile.
	measured := func(url string, conns int, headers ...string) (WrkResult, time.Duration, error) {
		pids, err := pathPIDs()
		if err != nil {
			return WrkResult{}, 0, err
		}
		before, err := cpuTimes(pids)
		if err != nil {
			return WrkResult{}, 0, err
		}
		r, err := runWrk(s.Config.Wrk, url, conns, s.Config.Duration, headers...)
		if err != nil {
			return r, 0, err
		}
		after, err := cpuTimes(pids)
		if err != nil {
			return r, 0, err
		}
		return r, r.CPU + after - before, nil
	}
	t.run = func() ([]Sample, error) {
		small, smallCPU, err := measured(base+"/", 16)
		if err != nil {
			return nil, err
		}
		big, bigCPU, err := measured(base+"/1m", 4)
		if err != nil {
			return nil, err
		}
		conns, connsCPU, err := measured(base+"/", 8, "Connection: close")
		if err != nil {
			return nil, err
		}
		// Each /1m response is one MiB of body.
		return []Sample{
			{Phase: PhaseRequests, D: perUnit(small.Requests, small.Elapsed)},
			{Phase: PhaseTransfer, D: perUnit(big.Requests, big.Elapsed)},
			{Phase: PhaseConns, D: perUnit(conns.Requests, conns.Elapsed)},
			{Phase: PhaseCPURequest, D: perUnit(small.Requests, smallCPU)},
			{Phase: PhaseCPUMiB, D: perUnit(big.Requests, bigCPU)},
			{Phase: PhaseCPUConn, D: perUnit(conns.Requests, connsCPU)},
		}, nil
	}
	return t, nil
}

// perUnit is the time per unit when n units took d.
func perUnit(n int64, d time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	return time.Duration(int64(d) / n)
}

// cpuTimes is the user and system time the processes pids spent (all
// their threads, from /proc/PID/stat; kernel work done in their context,
// as the loopback's and the veth's receive path, included).
func cpuTimes(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
		}
		d, err := parseStatCPU(string(b))
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		total += d
	}
	return total, nil
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times (100 on
// every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// parseStatCPU reads utime + stime from a /proc/PID/stat line.
func parseStatCPU(stat string) (time.Duration, error) {
	// The command name in parentheses may hold spaces: fields follow the
	// last ')'. utime and stime are fields 14 and 15, 12 and 13 after it.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command field")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(u+st) * clockTick, nil
}

// startHostServer runs the server on the host network pinned to the
// server CPU, waits until it listens and returns its PID and what stops
// it.
func startHostServer(bin, addr string) (int, func() error, error) {
	argv := []string{bin, "serve", "-addr", addr}
	if cpu := serverCPU(); cpu != "" {
		argv = append([]string{"taskset", "-c", cpu}, argv...)
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out strings.Builder
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		return 0, nil, fmt.Errorf("start host server: %w", err)
	}
	stop := func() error {
		c.Process.Kill()
		c.Wait()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := waitHTTP(ctx, "http://"+addr+"/"); err != nil {
		stop()
		return 0, nil, fmt.Errorf("host server: %w: %s", err, out.String())
	}
	// taskset execs the server: the PID is the server's.
	return c.Process.Pid, stop, nil
}

// WrkResult is what the bench reads from wrk's report.
type WrkResult struct {
	Requests int64
	Elapsed  time.Duration
	Bytes    int64
	// RequestsPerSec is wrk's own rate line.
	RequestsPerSec float64
	// CPU is the user and system time wrk used.
	CPU time.Duration
}

// runWrk runs one thread of wrk pinned to the client CPU with conns
// connections for d against url, sending headers ("Name: value").
func runWrk(wrk, url string, conns int, d time.Duration, headers ...string) (WrkResult, error) {
	argv := []string{wrk, "-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s"}
	for _, h := range headers {
		argv = append(argv, "-H", h)
	}
	argv = append(argv, url)
	if cpu := clientCPU(); cpu != "" {
		argv = append([]string{"taskset", "-c", cpu}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := c.CombinedOutput()
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk %s: %v: %s", url, err, strings.TrimSpace(string(out)))
	}
	r, err := ParseWrk(string(out))
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk %s: %w", url, err)
	}
	// taskset execs wrk: the process's usage is wrk's.
	r.CPU = c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	return r, nil
}

// ParseWrk reads wrk's report: "N requests in 3.00s, 1.2GB read",
// "Requests/sec: ...". Socket errors, timeouts and non-2xx answers fail
// the run: a rate with errors in it is not comparable.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var sawTotal, sawRate bool
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.Contains(line, " requests in "):
			// "123 requests in 3.00s, 45.67MB read"
			f := strings.Fields(strings.ReplaceAll(line, ",", ""))
			if len(f) < 6 {
				return r, fmt.Errorf("unexpected wrk line %q", line)
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk request count in %q: %w", line, err)
			}
			d, err := parseWrkDuration(f[3])
			if err != nil {
				return r, fmt.Errorf("wrk duration in %q: %w", line, err)
			}
			b, err := parseWrkBytes(f[4])
			if err != nil {
				return r, fmt.Errorf("wrk bytes in %q: %w", line, err)
			}
			r.Requests, r.Elapsed, r.Bytes, sawTotal = n, d, b, true
		case strings.HasPrefix(line, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			if err != nil {
				return r, fmt.Errorf("wrk rate in %q: %w", line, err)
			}
			r.RequestsPerSec, sawRate = v, true
		case strings.HasPrefix(line, "Socket errors:"), strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			return r, fmt.Errorf("wrk reported %s", line)
		}
	}
	if !sawTotal || !sawRate {
		return r, fmt.Errorf("no totals in wrk output: %q", out)
	}
	if r.Requests == 0 {
		return r, errors.New("wrk made no request")
	}
	return r, nil
}

// parseWrkDuration reads wrk's "3.00s", "1.50m", "250.00ms", "12.00us".
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("unknown unit in %q", s)
}

// parseWrkBytes reads wrk's binary-prefixed "45.67MB", "1.20GB", "512B".
func parseWrkBytes(s string) (int64, error) {
	mult := int64(1)
	for i, p := range []string{"KB", "MB", "GB", "TB"} {
		if v, ok := strings.CutSuffix(s, p); ok {
			s, mult = v, int64(1)<<(10*(i+1))
			break
		}
	}
	s = strings.TrimSuffix(s, "B")
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return int64(f * float64(mult)), nil
}

// DNSScenario times name lookups between two containers on one
// user-defined network: a client container resolves the server
// container's name n times through its engine's resolver (berth's and
// docker's embedded DNS at 127.0.0.11, podman's aardvark-dns at the
// gateway) and reports the median and p90.
type DNSScenario struct {
	Config NetConfig
	// N lookups per iteration.
	N int
}

// Name says what is looked up.
func (s DNSScenario) Name() string {
	return fmt.Sprintf("DNS: a container looks up another's name on a user network (%d lookups per run)", s.N)
}

// Setup starts the engine, its network and the container looked up.
func (s DNSScenario) Setup(env *Env) (Trial, error) {
	if env.System.Name == SysHost {
		return nil, errors.New("not applicable")
	}
	ne, err := startNetEngine(s.Config, env)
	if err != nil {
		return nil, err
	}
	if _, err := ne.cli(ne.runArgs("-d", "--name", "bbdns", "--network", ne.net, ne.image, "serve")...); err != nil {
		ne.stop()
		return nil, err
	}
	args := ne.runArgs("--rm", "--network", ne.net, ne.image, "lookup", "-n", strconv.Itoa(s.N), "bbdns")
	return &netTrial{ne: ne, run: func() ([]Sample, error) {
		out, err := ne.cli(args...)
		if err != nil {
			ne.removeAll()
			return nil, err
		}
		med, p90, err := ParseLookup(out)
		if err != nil {
			return nil, err
		}
		return []Sample{{Phase: "median lookup", D: med}, {Phase: "p90 lookup", D: p90}}, nil
	}}, nil
}

// ParseLookup reads benchnet lookup's "median_us M p90_us P n N".
func ParseLookup(out string) (median, p90 time.Duration, err error) {
	f := strings.Fields(out)
	if len(f) != 6 || f[0] != "median_us" || f[2] != "p90_us" || f[4] != "n" {
		return 0, 0, fmt.Errorf("unexpected lookup output %q", strings.TrimSpace(out))
	}
	m, err1 := strconv.ParseInt(f[1], 10, 64)
	p, err2 := strconv.ParseInt(f[3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("lookup output %q: %w", strings.TrimSpace(out), err)
	}
	return time.Duration(m) * time.Microsecond, time.Duration(p) * time.Microsecond, nil
}
