package logs

import (
	"fmt"
	"strconv"
	"strings"
)

// Defaults applied when the container's log options do not say otherwise.
const (
	DefaultMaxSize int64 = 20 << 20
	DefaultMaxFile       = 5
)

// Options bound a log's size on disk.
type Options struct {
	// MaxSize is the size in bytes at which the file is rotated; -1 means
	// unbounded (Docker's "max-size": "-1"), 0 means DefaultMaxSize.
	MaxSize int64 `json:"max_size,omitempty"`
	// MaxFile is how many files to keep, the live one included (0 means
	// DefaultMaxFile). It only matters with a bounded MaxSize.
	MaxFile int `json:"max_file,omitempty"`
}

func (o Options) withDefaults() Options {
	if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxFile <= 0 {
		o.MaxFile = DefaultMaxFile
	}
	return o
}

// ParseOptions reads Docker's json-file --log-opt keys: max-size (a size
// with an optional k, m or g suffix, binary units as in Docker, or -1) and
// max-file (a count >= 1). Other keys Docker accepts for json-file
// (labels, env, env-regex, tag, compress) are accepted and ignored except
// compress=true, which is refused; anything else is an error, as in Docker.
func ParseOptions(opts map[string]string) (Options, error) {
	var o Options
	for k, v := range opts {
		switch k {
		case "max-size":
			n, err := ParseSize(v)
			if err != nil {
				return Options{}, fmt.Errorf("log option max-size %q: %w", v, err)
			}
			o.MaxSize = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return Options{}, fmt.Errorf("log option max-file %q: must be a number >= 1", v)
			}
			o.MaxFile = n
		case "compress":
			if b, err := strconv.ParseBool(v); err != nil || b {
				return Options{}, fmt.Errorf("log option compress %q: compressed rotation is not supported", v)
			}
		case "labels", "labels-regex", "env", "env-regex", "tag":
		default:
			return Options{}, fmt.Errorf("unknown log opt '%s' for json-file log driver", k)
		}
	}
	if o.MaxSize < 0 && o.MaxFile > 1 {
		return Options{}, fmt.Errorf("max-file cannot be set without max-size")
	}
	return o.withDefaults(), nil
}

// ParseSize parses Docker's size strings for max-size: "1024", "10k",
// "20m", "1g" (binary multiples, a trailing "b" allowed) or "-1".
func ParseSize(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "b")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("invalid size: want a positive number with an optional k, m or g suffix")
	}
	return int64(f * float64(mult)), nil
}
