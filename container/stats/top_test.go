package stats

import (
	"reflect"
	"strings"
	"testing"
)

func TestParsePS(t *testing.T) {
	out := `UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 01:00 ?        00:00:01 /sbin/init
root         100       1  0 01:00 ?        00:00:00 sh -c sleep 1000 & wait
root         101     100  0 01:00 ?        00:00:00 sleep 1000
root         102       1  0 01:00 ?        00:00:00 other
`
	got, err := parsePS([]byte(out), []int{100, 101})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"root", "100", "1", "0", "01:00", "?", "00:00:00", "sh -c sleep 1000 & wait"},
		{"root", "101", "100", "0", "01:00", "?", "00:00:00", "sleep 1000"},
	}
	if !reflect.DeepEqual(got.Titles, []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}) || !reflect.DeepEqual(got.Processes, want) {
		t.Errorf("got %q %q", got.Titles, got.Processes)
	}

	// Thread rows ("m" option: "-" in the PID column) follow their
	// process: kept for the container's, dropped for others.
	out = "USER PID %CPU COMMAND\nroot 100 0.0 sh\nroot - 0.0 -\nroot 7 0.0 other\nroot - 0.0 -\n"
	got, err = parsePS([]byte(out), []int{100})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Processes, [][]string{{"root", "100", "0.0", "sh"}, {"root", "-", "0.0", "-"}}) {
		t.Errorf("threads: %q", got.Processes)
	}

	// No row of the container: no processes (null in JSON, as dockerd).
	got, err = parsePS([]byte(out), []int{5})
	if err != nil || got.Processes != nil || len(got.Titles) != 4 {
		t.Errorf("no match: %+v, %v", got, err)
	}

	// A Unicode space inside the command does not split it.
	got, err = parsePS([]byte("PID CMD\n100 echo a\u00a0b\n"), []int{100})
	if err != nil || !reflect.DeepEqual(got.Processes, [][]string{{"100", "echo a\u00a0b"}}) {
		t.Errorf("unicode: %q, %v", got.Processes, err)
	}

	for _, tc := range []struct{ out, err string }{
		{"COMMAND\nsh\n", "Couldn't find PID field in ps output"},
		{"", "Couldn't find PID field in ps output"},
		{"PID CMD\nabc sh\n", "Unexpected pid 'abc'"},
	} {
		if _, err := parsePS([]byte(tc.out), []int{1}); err == nil || !strings.HasPrefix(err.Error(), tc.err) {
			t.Errorf("parsePS(%q): %v, want %q", tc.out, err, tc.err)
		}
	}
}

func TestValidatePSArgs(t *testing.T) {
	for _, ok := range []string{"-ef", "aux", "-o pid,comm", "-o pid=PID", "-o pid=PIDX,comm"} {
		if err := validatePSArgs(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	err := validatePSArgs("-o user=PID,comm")
	if err == nil || err.Error() != `specifying "user=PID,comm" is not allowed` {
		t.Errorf("renamed PID column: %v", err)
	}
}
