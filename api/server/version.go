package server

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/errdefs"
)

type versionKey struct{}

// versionOf is the API version the request is served as.
func versionOf(ctx context.Context) string {
	if v, ok := ctx.Value(versionKey{}).(string); ok {
		return v
	}
	return APIVersion
}

// versionBefore reports whether the request's API version is lower than v.
func versionBefore(ctx context.Context, v string) bool {
	return compareVersions(versionOf(ctx), v) < 0
}

// compareVersions compares dotted numeric versions ("1.41" < "1.100").
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

var versionPrefix = regexp.MustCompile(`^/v([0-9][0-9.]*)(/.*)$`)

// withVersion strips "/v1.xx" from the path, refuses versions outside
// [MinAPIVersion, APIVersion] in dockerd's words and sets the headers
// dockerd sends on every response.
func (s *Server) withVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Server", "Berth/"+s.cfg.Version+" ("+runtime.GOOS+")")
		h.Set("Api-Version", APIVersion)
		h.Set("Ostype", runtime.GOOS)

		version := APIVersion
		if m := versionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
			version = m[1]
			r.URL.Path = m[2]
			r.URL.RawPath = ""
		}
		if compareVersions(version, MinAPIVersion) < 0 {
			writeError(w, r, fmt.Errorf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version: %w", version, MinAPIVersion, errdefs.ErrInvalidArgument))
			return
		}
		if compareVersions(version, APIVersion) > 0 {
			writeError(w, r, fmt.Errorf("client version %s is too new. Maximum supported API version is %s: %w", version, APIVersion, errdefs.ErrInvalidArgument))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), versionKey{}, version)))
	})
}
