// Package wire encodes the runtime's messages to a container process (the
// init config: a spec subset, the process, paths) in a compact binary form
// by walking the values with reflect.
//
// encoding/json builds, the first time it meets a struct type, a codec for
// that type's whole tree (field names, tags, an encoder per field type), and
// a container process decodes exactly one config: that build was most of
// its JSON cost. A plain walk needs no such set-up, and because it visits
// every exported field it cannot forget one that a newer spec adds.
//
// Supported: bool, ints, uints, strings, pointers, slices, maps and structs
// of those. Fields tagged `json:"-"` and unexported fields are skipped.
// Nil pointers, slices and maps decode as nil; empty ones as empty.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
)

// Marshal encodes *v.
func Marshal(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, errors.New("wire: Marshal needs a non-nil pointer")
	}
	e := &encoder{}
	if err := e.value(rv.Elem()); err != nil {
		return nil, err
	}
	return e.b, nil
}

// Unmarshal decodes b into v, a non-nil pointer.
func Unmarshal(b []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("wire: Unmarshal needs a non-nil pointer")
	}
	d := &decoder{b: b}
	if err := d.value(rv.Elem()); err != nil {
		return err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("wire: %d bytes left over", len(d.b))
	}
	return nil
}

func skip(f reflect.StructField) bool {
	return !f.IsExported() || f.Tag.Get("json") == "-"
}

type encoder struct{ b []byte }

func (e *encoder) uvarint(u uint64) { e.b = binary.AppendUvarint(e.b, u) }

// present writes the nil flag of a pointer, slice or map.
func (e *encoder) present(v reflect.Value) bool {
	if v.IsNil() {
		e.b = append(e.b, 0)
		return false
	}
	e.b = append(e.b, 1)
	return true
}

func (e *encoder) value(v reflect.Value) error {
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			e.b = append(e.b, 1)
		} else {
			e.b = append(e.b, 0)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.b = binary.AppendVarint(e.b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.uvarint(v.Uint())
	case reflect.String:
		e.uvarint(uint64(v.Len()))
		e.b = append(e.b, v.String()...)
	case reflect.Pointer:
		if e.present(v) {
			return e.value(v.Elem())
		}
	case reflect.Slice:
		if e.present(v) {
			e.uvarint(uint64(v.Len()))
			for i := 0; i < v.Len(); i++ {
				if err := e.value(v.Index(i)); err != nil {
					return err
				}
			}
		}
	case reflect.Map:
		if e.present(v) {
			e.uvarint(uint64(v.Len()))
			it := v.MapRange()
			for it.Next() {
				if err := e.value(it.Key()); err != nil {
					return err
				}
				if err := e.value(it.Value()); err != nil {
					return err
				}
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if skip(t.Field(i)) {
				continue
			}
			if err := e.value(v.Field(i)); err != nil {
				return fmt.Errorf("%s.%s: %w", t.Name(), t.Field(i).Name, err)
			}
		}
	default:
		return fmt.Errorf("wire: cannot encode %s", v.Type())
	}
	return nil
}

type decoder struct{ b []byte }

var errShort = errors.New("wire: message truncated")

func (d *decoder) uvarint() (uint64, error) {
	u, n := binary.Uvarint(d.b)
	if n <= 0 {
		return 0, errShort
	}
	d.b = d.b[n:]
	return u, nil
}

func (d *decoder) byte() (byte, error) {
	if len(d.b) == 0 {
		return 0, errShort
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c, nil
}

// length reads a count of elements, each at least one byte long.
func (d *decoder) length() (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(d.b)) {
		return 0, errShort
	}
	return int(n), nil
}

// value decodes into v, which must be settable.
func (d *decoder) value(v reflect.Value) error {
	switch v.Kind() {
	case reflect.Bool:
		c, err := d.byte()
		if err != nil {
			return err
		}
		v.SetBool(c != 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, n := binary.Varint(d.b)
		if n <= 0 {
			return errShort
		}
		d.b = d.b[n:]
		if v.OverflowInt(i) {
			return fmt.Errorf("wire: %d overflows %s", i, v.Type())
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u, err := d.uvarint()
		if err != nil {
			return err
		}
		if v.OverflowUint(u) {
			return fmt.Errorf("wire: %d overflows %s", u, v.Type())
		}
		v.SetUint(u)
	case reflect.String:
		n, err := d.uvarint()
		if err != nil {
			return err
		}
		if n > uint64(len(d.b)) {
			return errShort
		}
		v.SetString(string(d.b[:n]))
		d.b = d.b[n:]
	case reflect.Pointer:
		c, err := d.byte()
		if err != nil || c == 0 {
			return err
		}
		p := reflect.New(v.Type().Elem())
		if err := d.value(p.Elem()); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Slice:
		c, err := d.byte()
		if err != nil || c == 0 {
			return err
		}
		n, err := d.length()
		if err != nil {
			return err
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			if err := d.value(s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Map:
		c, err := d.byte()
		if err != nil || c == 0 {
			return err
		}
		n, err := d.length()
		if err != nil {
			return err
		}
		t := v.Type()
		m := reflect.MakeMapWithSize(t, n)
		for i := 0; i < n; i++ {
			k, e := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
			if err := d.value(k); err != nil {
				return err
			}
			if err := d.value(e); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if skip(t.Field(i)) {
				continue
			}
			if err := d.value(v.Field(i)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("wire: cannot decode %s", v.Type())
	}
	return nil
}
