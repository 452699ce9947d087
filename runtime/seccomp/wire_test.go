package seccomp

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestFilterBinaryRoundTrip(t *testing.T) {
	f, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "no_such_syscall"}, Action: specs.ActErrno}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var g Filter
	if err := g.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, &g) || len(g.prog) == 0 || len(g.Skipped) != 1 {
		t.Fatalf("round trip changed the filter: %+v vs %+v", f, &g)
	}
	empty := &Filter{}
	eb, _ := empty.MarshalBinary()
	for name, bad := range map[string][]byte{
		"empty program": eb,
		"truncated":     b[:len(b)-3],
		"longer":        append(append([]byte{}, b...), 0, 0, 0, 0, 0, 0, 0, 0),
		"no magic":      b[4:],
		"nothing":       nil,
		"json":          []byte(`{"prog":[[6,0,0,0]]}`),
	} {
		if err := new(Filter).UnmarshalBinary(bad); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}
