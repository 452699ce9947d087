package registry

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

const (
	tokenService = "berth-test-registry"
	tokenIssuer  = "berth-test-token-issuer"
	tokenTTL     = 5 * time.Minute
)

// tokenServer implements the Docker registry token flow: GET /token with
// service and scope parameters (and basic credentials when required), or
// POST /token with an OAuth2 password grant, answered with a JWT signed
// ES256 whose x5c header carries the certificate the registry trusts
// (its rootcertbundle).
type tokenServer struct {
	srv        *httptest.Server
	key        *ecdsa.PrivateKey
	cert       *x509.Certificate
	certFile   string
	user, pass string

	mu       sync.Mutex
	requests []TokenRequest
	closed   bool
}

// TokenRequest is one request the token server answered.
type TokenRequest struct {
	Account string   // the authenticated user ("" when anonymous)
	Scopes  []string // requested scopes
	Granted bool     // false when refused (bad or missing credentials)
}

func newTokenServer(dir, user, pass string) (*tokenServer, error) {
	key, cert, err := newSelfSigned("token-issuer")
	if err != nil {
		return nil, err
	}
	certFile, _, err := writeKeyPair(dir, "token-issuer", key, cert)
	if err != nil {
		return nil, err
	}
	ts := &tokenServer{key: key, cert: cert, certFile: certFile, user: user, pass: pass}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve)) // 127.0.0.1, a free port
	return ts, nil
}

func (ts *tokenServer) realm() string { return ts.srv.URL + "/token" }

func (ts *tokenServer) close() {
	ts.mu.Lock()
	closed := ts.closed
	ts.closed = true
	ts.mu.Unlock()
	if !closed {
		ts.srv.Close()
	}
}

func (ts *tokenServer) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/token" {
		http.NotFound(w, req)
		return
	}
	var (
		user, pass string
		haveCreds  bool
		scopes     []string
		service    string
	)
	switch req.Method {
	case http.MethodGet:
		user, pass, haveCreds = req.BasicAuth()
		q := req.URL.Query()
		service = q.Get("service")
		for _, s := range q["scope"] {
			scopes = append(scopes, strings.Fields(s)...)
		}
	case http.MethodPost: // OAuth2 password grant, as containerd and docker may use
		if err := req.ParseForm(); err != nil || req.PostForm.Get("grant_type") != "password" {
			http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
			return
		}
		user, pass, haveCreds = req.PostForm.Get("username"), req.PostForm.Get("password"), true
		service = req.PostForm.Get("service")
		scopes = strings.Fields(req.PostForm.Get("scope"))
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ok := true
	if ts.user != "" {
		ok = haveCreds &&
			subtle.ConstantTimeCompare([]byte(user), []byte(ts.user)) == 1 &&
			subtle.ConstantTimeCompare([]byte(pass), []byte(ts.pass)) == 1
	} else if !haveCreds {
		user = ""
	}
	ts.mu.Lock()
	ts.requests = append(ts.requests, TokenRequest{Account: user, Scopes: scopes, Granted: ok})
	ts.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="berth-test-token"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad or missing credentials"}]}`, http.StatusUnauthorized)
		return
	}
	if service != "" && service != tokenService {
		http.Error(w, `{"error":"invalid service"}`, http.StatusBadRequest)
		return
	}
	tok, err := ts.issue(user, scopes)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"token":        tok,
		"access_token": tok,
		"expires_in":   int(tokenTTL.Seconds()),
		"issued_at":    time.Now().UTC().Format(time.RFC3339),
	})
}

type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// issue makes a JWT granting every requested action on every scope
// ("type:name:action,action"; names may contain ':' only before the last).
func (ts *tokenServer) issue(account string, scopes []string) (string, error) {
	var acc []access
	for _, s := range scopes {
		first, last := strings.Index(s, ":"), strings.LastIndex(s, ":")
		if first < 0 || first == last {
			continue
		}
		acc = append(acc, access{Type: s[:first], Name: s[first+1 : last], Actions: strings.Split(s[last+1:], ",")})
	}
	if acc == nil {
		acc = []access{}
	}
	now := time.Now()
	header := map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(ts.cert.Raw)}}
	claims := map[string]any{
		"iss": tokenIssuer, "sub": account, "aud": tokenService,
		"exp": now.Add(tokenTTL).Unix(), "nbf": now.Add(-time.Second).Unix(), "iat": now.Unix(),
		"jti": randomHex(12), "access": acc,
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64) // JWS ES256: r || s, 32 bytes each
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig), nil
}

// TokenRequests returns the requests the token server answered so far
// (nil without token auth).
func (r *Registry) TokenRequests() []TokenRequest {
	if r.token == nil {
		return nil
	}
	r.token.mu.Lock()
	defer r.token.mu.Unlock()
	return append([]TokenRequest(nil), r.token.requests...)
}
