package wire

import (
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fill sets every exported field reachable from v to a non-zero value
// (pointers, slices and maps get one element), so that a round trip
// compares every field a spec type has.
func fill(t *testing.T, v reflect.Value, depth int) {
	if depth > 12 {
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-int64(depth) - 7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(uint64(depth) + 300)
	case reflect.String:
		v.SetString("s" + strings.Repeat("x", depth))
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(t, s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k, depth+1)
		fill(t, e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if !skip(v.Type().Field(i)) {
				fill(t, v.Field(i), depth+1)
			}
		}
	default:
		t.Fatalf("fill: unsupported kind %s (%s)", v.Kind(), v.Type())
	}
}

// linuxParts are the spec types a container process is sent (the whole
// of specs.Linux included; specs.Spec itself has Windows' interface field).
type linuxParts struct {
	Process *specs.Process
	Root    *specs.Root
	Mounts  []specs.Mount
	Hooks   *specs.Hooks
	Linux   *specs.Linux
	Annot   map[string]string
}

func TestRoundTripEveryField(t *testing.T) {
	var in linuxParts
	fill(t, reflect.ValueOf(&in).Elem(), 0)
	b, err := Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out linuxParts
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip changed the spec:\n%+v\n%+v", in, out)
	}
	for i := 0; i < len(b); i++ {
		var x linuxParts
		if err := Unmarshal(b[:i], &x); err == nil {
			t.Fatalf("a message truncated to %d of %d bytes decoded", i, len(b))
		}
	}
}

func TestNilAndEmptyStayApart(t *testing.T) {
	type T struct {
		P    *int
		S, E []string
		M, N map[string]string
		Skip string `json:"-"`
		priv int
	}
	in := T{S: nil, E: []string{}, M: nil, N: map[string]string{}, Skip: "x", priv: 1}
	b, err := Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.P != nil || out.S != nil || out.E == nil || out.M != nil || out.N == nil || out.Skip != "" || out.priv != 0 {
		t.Fatalf("got %+v", out)
	}
	if _, err := Marshal(&struct{ F func() }{}); err == nil {
		t.Fatal("a func field encoded")
	}
	if err := Unmarshal(append(b, 0), &out); err == nil {
		t.Fatal("trailing bytes accepted")
	}
}
