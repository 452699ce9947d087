package logs

import (
	"time"
	"unicode/utf8"
)

// appendEntry appends one json-file line: {"log":...,"stream":...,"time":...}\n.
// The escaping is dockerd's (its jsonlog package): ", \ , \n and \r as
// backslash escapes, other control bytes and <, >, & as \u00XX, invalid
// UTF-8 as \ufffd, U+2028/U+2029 escaped. Hand-written because the shim
// encodes every line a container prints and reflection would cost CPU.
func appendEntry(b []byte, line []byte, stream string, ts []byte) []byte {
	if len(line) > 0 {
		b = append(b, `{"log":`...)
		b = appendString(b, line)
		b = append(b, `,"stream":`...)
	} else {
		b = append(b, `{"stream":`...)
	}
	b = appendString(b, []byte(stream))
	b = append(b, `,"time":"`...)
	b = append(b, ts...)
	return append(b, "\"}\n"...)
}

const hexDigits = "0123456789abcdef"

func appendString(b []byte, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendTime formats t as dockerd does in json-file: UTC, RFC 3339 with
// nanoseconds and trailing zeros trimmed.
func appendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, time.RFC3339Nano)
}
