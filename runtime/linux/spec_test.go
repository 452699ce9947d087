package linux

import (
	"encoding/json"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestLinuxSpecCoversSpec: linuxSpec must have every field of specs.Spec
// (same name, type and JSON key) except the other platforms' sections, or a
// newer runtime-spec's field would be silently dropped.
func TestLinuxSpecCoversSpec(t *testing.T) {
	others := map[string]bool{"Solaris": true, "Windows": true, "VM": true, "ZOS": true, "FreeBSD": true}
	st, lt := reflect.TypeOf(specs.Spec{}), reflect.TypeOf(linuxSpec{})
	n := 0
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		if others[f.Name] {
			continue
		}
		n++
		g, ok := lt.FieldByName(f.Name)
		if !ok || g.Type != f.Type || g.Tag.Get("json") != f.Tag.Get("json") {
			t.Errorf("linuxSpec lacks specs.Spec.%s %s `json:%q`", f.Name, f.Type, f.Tag.Get("json"))
		}
	}
	if lt.NumField() != n {
		t.Errorf("linuxSpec has %d fields, specs.Spec's Linux part %d", lt.NumField(), n)
	}
}

func TestDecodeSpecRoundTrip(t *testing.T) {
	in := DefaultSpec()
	in.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/true"}}}
	in.Annotations = map[string]string{"a": "b"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeSpec(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("decodeSpec changed the spec:\n%+v\n%+v", in, out)
	}
	b2, err := json.Marshal(toLinuxSpec(out))
	if err != nil || string(b2) != string(b) {
		t.Fatalf("linuxSpec encodes differently (%v):\n%s\n%s", err, b, b2)
	}
}
