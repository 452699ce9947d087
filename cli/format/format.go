// Package format renders Engine API objects the way Docker's CLI does:
// Go templates with Docker's functions, "table" formats with headers
// aligned by a tabwriter, and the human sizes, durations and truncations
// of docker ps/images/history/stats.
package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/docker/cli/templates"
)

// TableKey starts a format that is drawn as a table with headers.
const TableKey = "table"

// Format is a --format value: "table", "table <template>", "json" or a
// Go template.
type Format string

// IsTable reports whether f draws a table.
func (f Format) IsTable() bool { return strings.HasPrefix(string(f), TableKey) }

// Context is one row's data: its exported string methods are the
// template's fields. Header returns the column headers by field name.
type Context interface {
	Header() map[string]string
}

// Write renders rows with format to w. When format is a table the headers
// come first and the columns are aligned as Docker aligns them.
func Write(w io.Writer, format Format, rows []Context, header map[string]string) error {
	text := string(format)
	table := format.IsTable()
	if table {
		text = strings.TrimPrefix(text, TableKey)
	}
	// Docker trims the spaces around the template and accepts escaped tabs
	// and newlines (shells pass them as two characters).
	text = strings.Trim(text, " ")
	text = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(text)
	if text == "json" {
		text = "{{json .}}"
	}
	tmpl, err := templates.Parse(text)
	if err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	var buf bytes.Buffer
	if table && len(header) > 0 {
		htmpl, err := template.New("").Funcs(templates.HeaderFunctions).Parse(text)
		if err == nil {
			// Missing header names render as "" rather than "<no value>".
			h := make(headerMap, len(header))
			for k, v := range header {
				h[k] = v
			}
			var hb bytes.Buffer
			if err := htmpl.Option("missingkey=zero").Execute(&hb, h); err == nil {
				buf.Write(hb.Bytes())
				buf.WriteByte('\n')
			}
		}
	}
	for _, r := range rows {
		if err := tmpl.Execute(&buf, r); err != nil {
			return fmt.Errorf("template: %w", err)
		}
		buf.WriteByte('\n')
	}
	if !table {
		_, err := buf.WriteTo(w)
		return err
	}
	tw := tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
	if _, err := buf.WriteTo(tw); err != nil {
		return err
	}
	return tw.Flush()
}

// headerMap is a table's header row: the columns' names, and a label
// column ({{.Label "x"}}) named after its label, as Docker's.
type headerMap map[string]string

// Label is the header of a label column: the label's name.
func (headerMap) Label(name string) string { return name }

// Template renders one value with a user template (inspect --format).
func Template(w io.Writer, text string, v any) error {
	tmpl, err := Parse(text)
	if err != nil {
		return err
	}
	return tmpl.Execute(w, v)
}

// Parse parses a user template with Docker's functions, naming a parse
// error as Docker does.
func Parse(text string) (*template.Template, error) {
	tmpl, err := templates.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return tmpl, nil
}

// marshalMethods is what {{json .}} prints for a row: every exported
// method without arguments that returns a string, by name.
func marshalMethods(ctx any) ([]byte, error) {
	m := map[string]any{}
	v := reflect.ValueOf(ctx)
	t := v.Type()
	for i := 0; i < t.NumMethod(); i++ {
		meth := t.Method(i)
		switch meth.Name {
		case "MarshalJSON", "Header":
			continue
		}
		if meth.Type.NumIn() != 1 || meth.Type.NumOut() != 1 {
			continue
		}
		out := v.Method(i).Call(nil)[0]
		if out.Kind() != reflect.String {
			continue
		}
		m[meth.Name] = out.String()
	}
	return json.Marshal(m)
}

// sortedJoin joins a map's "k=v" pairs in key order.
func sortedJoin(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// Ellipsis shortens s to max runes, the last one an ellipsis.
func Ellipsis(s string, max int) string {
	r := []rune(s)
	if max <= 0 || len(r) <= max {
		return s
	}
	if max == 1 {
		return string(r[:1])
	}
	return string(r[:max-1]) + "…"
}

// TruncateID is the 12-character short form of an id (without its
// algorithm prefix), as Docker prints ids.
func TruncateID(id string) string {
	if i := strings.IndexRune(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}
