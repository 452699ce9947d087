// Package filters parses the "filters" query parameter of the Engine API
// (a JSON object of key -> values) and matches values the way dockerd
// does: exact, prefix ("fuzzy") and key[=value] label matching.
package filters

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/berth-dev/berth/errdefs"
)

// Args are the parsed filters: key -> set of values.
type Args map[string]map[string]bool

// Parse decodes the filters parameter. Both shapes clients send are
// accepted: {"key":{"value":true}} (current) and {"key":["value"]} (API
// clients before 1.22 and some SDKs). "" is no filter.
func Parse(param string) (Args, error) {
	args := Args{}
	if param == "" {
		return args, nil
	}
	if err := json.Unmarshal([]byte(param), (*map[string]map[string]bool)(&args)); err == nil {
		return args, nil
	}
	var legacy map[string][]string
	if err := json.Unmarshal([]byte(param), &legacy); err != nil {
		return nil, fmt.Errorf("invalid filters %q: %v: %w", param, err, errdefs.ErrInvalidArgument)
	}
	for k, vs := range legacy {
		for _, v := range vs {
			args.Add(k, v)
		}
	}
	return args, nil
}

// Add adds value under key.
func (a Args) Add(key, value string) {
	if a[key] == nil {
		a[key] = map[string]bool{}
	}
	a[key][value] = true
}

// Has reports whether key is filtered on.
func (a Args) Has(key string) bool { return len(a[key]) > 0 }

// Get returns the values of key, sorted.
func (a Args) Get(key string) []string {
	out := make([]string, 0, len(a[key]))
	for v := range a[key] {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Validate refuses keys outside accepted, in dockerd's words.
func (a Args) Validate(accepted ...string) error {
	for k := range a {
		if !slices.Contains(accepted, k) {
			return fmt.Errorf("invalid filter '%s': %w", k, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// ExactMatch reports whether source is one of key's values; true when key
// is not filtered on.
func (a Args) ExactMatch(key, source string) bool {
	vs, ok := a[key]
	if !ok || len(vs) == 0 {
		return true
	}
	return vs[source]
}

// FuzzyMatch is ExactMatch that also accepts a value that is a prefix of
// source (short IDs).
func (a Args) FuzzyMatch(key, source string) bool {
	if a.ExactMatch(key, source) {
		return true
	}
	for v := range a[key] {
		if v != "" && strings.HasPrefix(source, v) {
			return true
		}
	}
	return false
}

// Match is ExactMatch that also accepts a value that, as an unanchored
// regular expression, matches source: dockerd's filters.Match, used for
// network names and ids. A value that is not a valid expression matches
// only exactly.
func (a Args) Match(key, source string) bool {
	if a.ExactMatch(key, source) {
		return true
	}
	for v := range a[key] {
		if ok, err := regexp.MatchString(v, source); err == nil && ok {
			return true
		}
	}
	return false
}

// MatchKVList reports whether every "k" or "k=v" value of key is satisfied
// by m (labels, event attributes); true when key is not filtered on.
func (a Args) MatchKVList(key string, m map[string]string) bool {
	vs := a[key]
	if len(vs) == 0 {
		return true
	}
	for v := range vs {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := m[k]
		if !ok || (hasValue && got != want) {
			return false
		}
	}
	return true
}

// Bool returns key's single boolean value ("true"/"1" or "false"/"0"), or
// nil when key is not filtered on; any other value is an invalid argument.
func (a Args) Bool(key string) (*bool, error) {
	vs := a.Get(key)
	if len(vs) == 0 {
		return nil, nil
	}
	if len(vs) > 1 {
		return nil, fmt.Errorf("filter %q takes one value, got %d: %w", key, len(vs), errdefs.ErrInvalidArgument)
	}
	switch strings.ToLower(vs[0]) {
	case "true", "1":
		t := true
		return &t, nil
	case "false", "0":
		f := false
		return &f, nil
	}
	return nil, fmt.Errorf("invalid filter '%s=%s': %w", key, vs[0], errdefs.ErrInvalidArgument)
}
