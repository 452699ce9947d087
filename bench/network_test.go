package bench

import (
	"os"
	"strings"
	"testing"
	"time"
)

// A real report of wrk 4.1 (Debian 12) against benchnet's /1m.
const wrkReport = `Running 1s test @ http://127.0.0.1:18091/1m
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.99ms    1.57ms  15.50ms   79.49%
    Req/Sec     1.07k    88.44     1.21k    60.00%
  1073 requests in 1.01s, 1.05GB read
Requests/sec:   1059.60
Transfer/sec:      1.03GB
`

func TestParseWrk(t *testing.T) {
	r, err := ParseWrk(wrkReport)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 1073 || r.Elapsed != 1010*time.Millisecond || r.RequestsPerSec != 1059.60 {
		t.Fatalf("ParseWrk = %+v", r)
	}
	if want := int64(1127428915); r.Bytes != want {
		t.Fatalf("bytes = %d, want %d", r.Bytes, want)
	}
	// 1073 MiB in 1.01 s.
	if rate := RateStats([]time.Duration{perUnit(r.Requests, r.Elapsed)}).Median; rate < 1062 || rate > 1063 {
		t.Fatalf("MiB/s = %.1f, want 1062.4", rate)
	}
}

func TestParseWrkRejectsErrors(t *testing.T) {
	for name, out := range map[string]string{
		"socket errors": strings.Replace(wrkReport, "Requests/sec:", "  Socket errors: connect 0, read 2, write 0, timeout 0\nRequests/sec:", 1),
		"non-2xx":       strings.Replace(wrkReport, "Requests/sec:", "  Non-2xx or 3xx responses: 7\nRequests/sec:", 1),
		"no totals":     "unable to connect to 127.0.0.1:18091 Connection refused\n",
		"no requests":   strings.Replace(wrkReport, "1073 requests", "0 requests", 1),
		"bad duration":  strings.Replace(wrkReport, "in 1.01s", "in 1.01x", 1),
	} {
		if r, err := ParseWrk(out); err == nil {
			t.Errorf("%s: ParseWrk accepted it: %+v", name, r)
		}
	}
}

func TestParseWrkUnits(t *testing.T) {
	for in, want := range map[string]time.Duration{"3.00s": 3 * time.Second, "250.50ms": 250500 * time.Microsecond, "12.00us": 12 * time.Microsecond, "1.50m": 90 * time.Second} {
		if got, err := parseWrkDuration(in); err != nil || got != want {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]int64{"512B": 512, "2.00KB": 2048, "10.59MB": 11104419, "1.05GB": 1127428915} {
		if got, err := parseWrkBytes(in); err != nil || got != want {
			t.Errorf("parseWrkBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestParseLookup(t *testing.T) {
	med, p90, err := ParseLookup("median_us 212 p90_us 352 n 200\n")
	if err != nil || med != 212*time.Microsecond || p90 != 352*time.Microsecond {
		t.Fatalf("ParseLookup = %v, %v, %v", med, p90, err)
	}
	for _, bad := range []string{"", "lookup bbdns: no such host", "median_us x p90_us 1 n 2"} {
		if _, _, err := ParseLookup(bad); err == nil {
			t.Errorf("ParseLookup(%q) accepted it", bad)
		}
	}
}

func TestRateStats(t *testing.T) {
	// 100, 200 and 400 units/s.
	st := RateStats([]time.Duration{10 * time.Millisecond, 5 * time.Millisecond, 2500 * time.Microsecond})
	if st.Median != 200 || st.Min != 100 || st.Max != 400 {
		t.Fatalf("RateStats = %+v", st)
	}
	// An even count takes the mean of the two middle rates.
	if st := RateStats([]time.Duration{10 * time.Millisecond, 5 * time.Millisecond}); st.Median != 150 {
		t.Fatalf("even median = %v", st.Median)
	}
}

func TestWriteRateMarkdown(t *testing.T) {
	systems := []System{{Name: "berth"}, {Name: "docker", Anchor: true}, {Name: "host", Anchor: true}}
	res := []Result{
		{Scenario: "wrk", Phase: PhaseRequests, System: "berth", Samples: []time.Duration{50 * time.Microsecond}},
		{Scenario: "wrk", Phase: PhaseRequests, System: "docker", Samples: []time.Duration{100 * time.Microsecond}},
		{Scenario: "wrk", Phase: PhaseRequests, System: "host", Samples: []time.Duration{40 * time.Microsecond}},
		{Scenario: "wrk", Phase: PhaseTransfer, System: "berth", Err: "error: boom"},
	}
	var b strings.Builder
	if err := WriteRateMarkdown(&b, 1, systems, res, RateUnits); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| wrk · " + PhaseRequests + " | berth | 20000 req/s | 20000 | 20000 | 2.00 | 0.80 |",
		"| wrk · " + PhaseRequests + " | host | 25000 req/s | 25000 | 25000 | 2.50 | 1.00 |",
		"| wrk · " + PhaseTransfer + " | berth | error: boom | | | | |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing row %q in\n%s", want, out)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	stat := "4242 (bench (net) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 0 0 20 0 7 0 100 1000 10 18446744073709551615"
	d, err := parseStatCPU(stat)
	if err != nil || d != 175*clockTick {
		t.Fatalf("parseStatCPU = %v, %v; want %v", d, err, 175*clockTick)
	}
	if _, err := parseStatCPU("4242 (x) S 1 2"); err == nil {
		t.Fatal("parseStatCPU accepted a short line")
	}
	// The running test's own figure is readable and grows with work.
	before, err := cpuTimes([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; {
		after, err := cpuTimes([]int{os.Getpid()})
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("cpu time did not grow over 5 s of busy work: %v -> %v", before, after)
		}
	}
}
