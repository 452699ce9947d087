package seccomp

import (
	"encoding/json"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestFilterJSONRoundTrip(t *testing.T) {
	f, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var g Filter
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.prog, g.prog) || f.flags != g.flags || len(g.prog) == 0 {
		t.Fatalf("round trip changed the program: %d vs %d instructions", len(f.prog), len(g.prog))
	}
	for _, bad := range []string{`{"bpf":""}`, `{"bpf":"AAAA"}`, `{"prog":[[6,0,0,0]]}`} {
		if err := json.Unmarshal([]byte(bad), &g); err == nil {
			t.Fatalf("%s decoded without error", bad)
		}
	}
}
