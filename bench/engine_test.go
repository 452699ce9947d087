package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEpochAndRuntimeCommand(t *testing.T) {
	d, err := epoch("1700000000.123456")
	if err != nil || d != 1700000000*time.Second+123456*time.Microsecond {
		t.Fatalf("epoch = %v, %v", d, err)
	}
	for args, want := range map[string]string{
		"--root /r --log /l --log-format json create --bundle b id": "create",
		"start id":               "start",
		"--root=/r delete -f id": "delete",
	} {
		if got := runtimeCommand(strings.Fields(args)); got != want {
			t.Errorf("runtimeCommand(%q) = %q, want %q", args, got, want)
		}
	}
}

func TestReadCalls(t *testing.T) {
	log := filepath.Join(t.TempDir(), "calls.log")
	text := "100.000010 100.000010 shim\n" +
		"100.000020 100.000050 runtime --root /r create --bundle b x\n" +
		"100.000060 100.000070 runtime --root /r state x\n" +
		"100.000080 100.000090 runtime --root /r state x\n"
	if err := os.WriteFile(log, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	calls, err := readCalls(log, 100*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []call{
		{"berth-shim launched", 10 * time.Microsecond, 10 * time.Microsecond},
		{"berth-runtime create", 20 * time.Microsecond, 50 * time.Microsecond},
		{"berth-runtime state", 60 * time.Microsecond, 70 * time.Microsecond},
		{"berth-runtime state #2", 80 * time.Microsecond, 90 * time.Microsecond},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls = %+v", calls)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
		}
	}
}

func TestMemOfSelf(t *testing.T) {
	m, err := memOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS < 1<<20 || m.PSS <= 0 || m.PSS > m.RSS {
		t.Fatalf("own memory %+v: want RSS over 1 MiB and 0 < PSS <= RSS", m)
	}
	if p, err := ppid(os.Getpid()); err != nil || p != os.Getppid() {
		t.Fatalf("ppid = %d, %v; want %d", p, err, os.Getppid())
	}
}

func TestWriteMemoryMarkdown(t *testing.T) {
	res := []MemoryResult{
		{System: "a", Supervisor: "shim", Supervisors: []Mem{{RSS: 2 << 20, PSS: 1 << 20}, {RSS: 4 << 20, PSS: 1 << 20}},
			Idle: []ProcMem{{"d", Mem{10 << 20, 5 << 20}}, {"c", Mem{1 << 20, 1 << 20}}}},
		{System: "p", Supervisor: "conmon", Supervisors: []Mem{{RSS: 1 << 20, PSS: 1 << 19}}},
		{System: "gone", Err: "skipped: not installed"},
	}
	var b strings.Builder
	if err := WriteMemoryMarkdown(&b, 2, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| a | shim | 3.00 MiB | 2.00 MiB–4.00 MiB | 1.00 MiB | 1.00 MiB–1.00 MiB |",
		"| a | d 10.00 MiB + c 1.00 MiB | 11.00 MiB | 6.00 MiB | – | – |",
		"| p | no daemon |",
		"| gone | skipped: not installed |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, b.String())
		}
	}
}
