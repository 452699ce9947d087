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
		b = AppendString(b, line)
		b = append(b, `,"stream":`...)
	} else {
		b = append(b, `{"stream":`...)
	}
	b = AppendString(b, stream)
	b = append(b, `,"time":"`...)
	b = append(b, ts...)
	return append(b, "\"}\n"...)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped as encoding/json's
// Marshal and dockerd's json-file do. Exported for berth-shim, which
// encodes its few protocol messages by hand to stay small.
func AppendString[T string | []byte](b []byte, s T) []byte {
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
		// At most 4 bytes: the conversion needs no allocation.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
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
func appendTime(b []byte, t time.Time) []byte { return AppendTime(b, t) }

// AppendTime appends t in UTC as time.RFC3339Nano formats it (fraction
// trimmed of trailing zeros, none when zero; "Z"), which is also what
// encoding/json writes for a UTC time.Time. By hand because time.Format
// is one of the bigger pieces of a small static binary (berth-shim).
func AppendTime(b []byte, t time.Time) []byte {
	// From the Unix time: time.Time's calendar methods would link the
	// local time zone loader.
	secs := t.Unix()
	days := secs / 86400
	if secs%86400 < 0 {
		days--
	}
	sod := int(secs - days*86400)
	year, month, day := civil(days)
	hour, minute, sec := sod/3600, sod/60%60, sod%60
	if year < 0 || year > 9999 {
		// Outside RFC 3339; encoding/json refuses such times. Not reached
		// by wall-clock times.
		year = max(0, min(year, 9999))
	}
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, month, 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	if ns := t.Nanosecond(); ns != 0 {
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		b = append(b, '.')
		b = appendDigits(b, ns, digits)
	}
	return append(b, 'Z')
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (the "days from civil" inverse, on 400-year eras).
func civil(days int64) (year, month, day int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year = int(yoe + era*400)
	if month <= 2 {
		year++
	}
	return year, month, day
}

// appendDigits appends v (>= 0) zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v > 0 || width > 0 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	return append(b, buf[i:]...)
}
