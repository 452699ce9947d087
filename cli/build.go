package cli

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/runopts"
)

// buildFlags are `berth build`'s options.
type buildFlags struct {
	tags, buildArgs, labels, cacheFrom []string
	secrets, ssh                       []string
	file, target, iidfile, progress    string
	platform                           string
	network                            string
	noCache, pull, quiet               bool
	rm, forceRm, compress, noTrust     bool
}

func (c *Cli) newBuildCmd() *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH | -",
		Short: "Build an image from a Dockerfile",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runBuild(f, args[0])
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&f.tags, "tag", "t", nil, `Name and optionally a tag in the "name:tag" format`)
	fs.StringVarP(&f.file, "file", "f", "", `Name of the Dockerfile (default: "PATH/Dockerfile")`)
	fs.StringArrayVar(&f.buildArgs, "build-arg", nil, "Set build-time variables")
	fs.StringArrayVar(&f.labels, "label", nil, "Set metadata for an image")
	fs.StringArrayVar(&f.cacheFrom, "cache-from", nil, "Images to consider as cache sources")
	fs.StringVar(&f.target, "target", "", "Set the target build stage to build")
	fs.StringVar(&f.iidfile, "iidfile", "", "Write the image ID to the file")
	fs.StringVar(&f.progress, "progress", "auto", `Set type of progress output ("auto", "plain", "tty")`)
	fs.StringVar(&f.network, "network", "", `Networking mode for the RUN instructions ("default", "none", "host")`)
	fs.BoolVar(&f.noCache, "no-cache", false, "Do not use cache when building the image")
	fs.BoolVar(&f.pull, "pull", false, "Always attempt to pull a newer version of the image")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "Suppress the build output and print image ID on success")
	fs.StringArrayVar(&f.secrets, "secret", nil, `Secret to expose to the build (format: "id=mysecret[,src=/local/secret]" or "id=mysecret,env=VAR")`)
	fs.StringVar(&f.platform, "platform", os.Getenv("DOCKER_DEFAULT_PLATFORM"), `Set the target platform for the build ("os/arch[/variant]")`)
	fs.StringArrayVar(&f.ssh, "ssh", nil, "SSH agent socket or keys to expose to the build (not supported)")
	// The classic builder's intermediate containers: berthd's builder
	// makes none, so both ask for what always happens.
	fs.BoolVar(&f.rm, "rm", true, "Remove intermediate containers after a successful build")
	fs.BoolVar(&f.forceRm, "force-rm", false, "Always remove intermediate containers")
	fs.BoolVar(&f.compress, "compress", false, "Compress the build context using gzip")
	fs.BoolVar(&f.noTrust, "disable-content-trust", runopts.ContentTrustDefault(), "Skip image verification")
	return cmd
}

func (c *Cli) runBuild(f buildFlags, src string) error {
	if !f.noTrust {
		return runopts.ErrContentTrust
	}
	switch f.progress {
	case "auto", "plain", "tty":
	default:
		return StatusError{Status: fmt.Sprintf("invalid --progress %q: want auto, plain or tty", f.progress), Code: 125}
	}
	if f.progress == "tty" && !c.OutIsTerminal() {
		return StatusError{Status: "--progress=tty: the output is not a terminal", Code: 125}
	}
	opts := client.ImageBuildOptions{
		Tags: f.tags, Dockerfile: f.file, Target: f.target, NoCache: f.noCache, PullParent: f.pull,
		SuppressOutput: f.quiet, CacheFrom: f.cacheFrom, NetworkMode: f.network, Remove: f.rm, ForceRemove: f.forceRm,
		Version: build.BuilderV1, BuildArgs: map[string]*string{}, Labels: map[string]string{},
	}
	for _, a := range f.buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			// As docker: a bare name takes the value from the environment.
			ev, set := os.LookupEnv(k)
			if !set {
				continue
			}
			v = ev
		}
		opts.BuildArgs[k] = &v
	}
	for _, l := range f.labels {
		k, v, _ := strings.Cut(l, "=")
		opts.Labels[k] = v
	}
	if f.platform != "" {
		if strings.Contains(f.platform, ",") {
			return StatusError{Status: fmt.Sprintf("--platform %s: building for several platforms at once is not supported", f.platform), Code: 125}
		}
		// Sent as given: berthd parses and normalises it.
		goos, rest, _ := strings.Cut(f.platform, "/")
		arch, variant, _ := strings.Cut(rest, "/")
		if rest == "" {
			goos, arch = "linux", f.platform
		}
		opts.Platforms = []ocispec.Platform{{OS: goos, Architecture: arch, Variant: variant}}
	}
	if len(f.ssh) > 0 {
		return StatusError{Status: "--ssh is not supported: berthd cannot forward an SSH agent to a build; pass what the build needs with --secret", Code: 125}
	}
	secrets, err := readSecrets(f.secrets)
	if err != nil {
		return StatusError{Status: err.Error(), Code: 125}
	}
	body, dockerfile, err := c.buildContext(src, f.file)
	if err != nil {
		return err
	}
	opts.Dockerfile = dockerfile
	if f.compress {
		body = gzipped(body)
	}
	var api *client.Client
	if secrets != nil {
		// The secrets travel as a tar ahead of the context, announced by
		// berthsecrets=1 (berthd's own parameter: the moby client has no
		// field for it, a request hook adds it to /build).
		body = io.MultiReader(secrets, body)
		api, err = c.newClient(client.WithHTTPRequestHook(func(r *http.Request) error {
			if strings.HasSuffix(r.URL.Path, "/build") {
				q := r.URL.Query()
				q.Set("berthsecrets", "1")
				r.URL.RawQuery = q.Encode()
			}
			return nil
		}))
	} else {
		api, err = c.Client()
	}
	if err != nil {
		return err
	}
	if secrets != nil {
		// Another engine would take the secrets for build context (and
		// could COPY them into an image): only berthd gets them.
		v, err := api.ServerVersion(context.Background(), client.ServerVersionOptions{})
		if err != nil {
			return err
		}
		if v.Platform.Name != berthPlatformName {
			return StatusError{Status: fmt.Sprintf("--secret needs berthd: the daemon is %q, which cannot take build secrets over the classic /build API", v.Platform.Name), Code: 125}
		}
	}
	res, err := api.ImageBuild(context.Background(), body, opts)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	live := f.progress == "tty" || (f.progress == "auto" && c.OutIsTerminal())
	id, err := c.showBuild(res.Body, f.quiet, live)
	if err != nil {
		return err
	}
	if f.iidfile != "" {
		if err := os.WriteFile(f.iidfile, []byte(id), 0o644); err != nil {
			return fmt.Errorf("write image ID to %s: %w", f.iidfile, err)
		}
	}
	if f.quiet {
		fmt.Fprintln(c.Out, id)
	}
	return nil
}

// berthPlatformName is berthd's /version Platform.Name.
const berthPlatformName = "Berth Engine"

// maxSecretSize bounds one secret, as BuildKit's.
const maxSecretSize = 500 * 1024

// readSecrets reads the --secret values (docker buildx's syntax:
// id=ID[,src=FILE|,env=VAR][,type=file|env]; without src or env, the
// variable named ID if set, else the file ID) into a tar of one file per
// secret, named by its id. nil when there are none.
func readSecrets(specs []string) (io.Reader, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	for _, spec := range specs {
		fields, err := csv.NewReader(strings.NewReader(spec)).Read()
		if err != nil {
			return nil, fmt.Errorf("invalid --secret %q: %w", spec, err)
		}
		var id, src, env, typ string
		for _, field := range fields {
			k, v, ok := strings.Cut(field, "=")
			if !ok {
				return nil, fmt.Errorf("invalid --secret %q: field %q must be a key=value pair", spec, field)
			}
			switch strings.ToLower(k) {
			case "type":
				if v != "file" && v != "env" {
					return nil, fmt.Errorf("invalid --secret %q: unsupported secret type %q (want file or env)", spec, v)
				}
				typ = v
			case "id":
				id = v
			case "source", "src":
				src = v
			case "env":
				env = v
			default:
				return nil, fmt.Errorf("invalid --secret %q: unexpected key %q", spec, k)
			}
		}
		if typ == "env" && env == "" {
			env, src = src, ""
			if env == "" {
				env = id
			}
		}
		if id == "" {
			return nil, fmt.Errorf("invalid --secret %q: the id is missing", spec)
		}
		if seen[id] {
			return nil, fmt.Errorf("--secret id=%s is given twice", id)
		}
		seen[id] = true
		if env == "" && src == "" {
			if _, ok := os.LookupEnv(id); ok {
				env = id
			} else {
				src = id
			}
		}
		var data []byte
		if env != "" {
			v, ok := os.LookupEnv(env)
			if !ok {
				return nil, fmt.Errorf("--secret id=%s: environment variable %s is not set", id, env)
			}
			data = []byte(v)
		} else {
			fi, err := os.Stat(src)
			if err != nil {
				return nil, fmt.Errorf("--secret id=%s: %w", id, err)
			}
			if fi.Size() > maxSecretSize {
				return nil, fmt.Errorf("--secret id=%s: %s is too big (%d bytes, the limit is %d)", id, src, fi.Size(), maxSecretSize)
			}
			if data, err = os.ReadFile(src); err != nil {
				return nil, fmt.Errorf("--secret id=%s: %w", id, err)
			}
		}
		if len(data) > maxSecretSize {
			return nil, fmt.Errorf("--secret id=%s is too big (%d bytes, the limit is %d)", id, len(data), maxSecretSize)
		}
		if err := tw.WriteHeader(&tar.Header{Name: id, Mode: 0o400, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// buildMessage is one message of the /build stream.
type buildMessage struct {
	Stream      string          `json:"stream"`
	Aux         json.RawMessage `json:"aux"`
	Error       string          `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
		Code    int    `json:"code"`
	} `json:"errorDetail"`
}

// showBuild prints the build's stream with a CACHED mark on reused steps
// and the time of every step, and returns the image ID. live adds a
// status line on a terminal with the running step's elapsed time.
func (c *Cli) showBuild(r io.Reader, quiet, live bool) (string, error) {
	d := &buildDisplay{out: c.Out, live: live && !quiet}
	defer d.stop()
	if d.live {
		d.startTicker()
	}
	dec := json.NewDecoder(r)
	var id string
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", err
		}
		if m.ErrorDetail != nil || m.Error != "" {
			d.stop()
			msg, code := m.Error, 1
			if m.ErrorDetail != nil {
				msg = m.ErrorDetail.Message
				if m.ErrorDetail.Code > 0 {
					code = m.ErrorDetail.Code
				}
			}
			return "", StatusError{Status: msg, Code: code}
		}
		if len(m.Aux) > 0 {
			var aux struct{ ID string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
			continue
		}
		if quiet || m.Stream == "" {
			continue
		}
		d.stream(m.Stream)
	}
	if id == "" {
		return "", errors.New("the build ended without an image ID")
	}
	return id, nil
}

// buildDisplay writes a build's lines: step timings, CACHED marks, and
// on a terminal a status line redrawn below them.
type buildDisplay struct {
	mu        sync.Mutex
	out       io.Writer
	live      bool
	step      string
	stepStart time.Time
	done      chan struct{}
	stopped   bool
}

func (d *buildDisplay) startTicker() {
	d.done = make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-d.done:
				return
			case <-t.C:
				d.mu.Lock()
				d.status()
				d.mu.Unlock()
			}
		}
	}()
}

// status redraws the status line (locked).
func (d *buildDisplay) status() {
	if !d.live || d.stopped || d.step == "" {
		return
	}
	fmt.Fprintf(d.out, "\r\033[K[+] %s %.1fs", d.step, time.Since(d.stepStart).Seconds())
}

// clear erases the status line (locked).
func (d *buildDisplay) clear() {
	if d.live && !d.stopped {
		fmt.Fprint(d.out, "\r\033[K")
	}
}

func (d *buildDisplay) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.clear()
	d.stopped = true
	if d.done != nil {
		close(d.done)
	}
}

func (d *buildDisplay) endStep() {
	if !d.stepStart.IsZero() {
		fmt.Fprintf(d.out, " ---> done in %.2fs\n", time.Since(d.stepStart).Seconds())
	}
	d.step, d.stepStart = "", time.Time{}
}

func (d *buildDisplay) stream(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clear()
	for _, line := range strings.SplitAfter(s, "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "Step "):
			d.endStep()
			d.step, d.stepStart = strings.TrimSpace(line), time.Now()
			fmt.Fprint(d.out, line)
		case strings.HasPrefix(line, " ---> Using cache"):
			fmt.Fprint(d.out, " ---> CACHED\n")
		case strings.HasPrefix(line, "Successfully built"):
			d.endStep()
			fmt.Fprint(d.out, line)
		default:
			fmt.Fprint(d.out, line)
		}
	}
	d.status()
}

// buildContext is the context tar to send and the Dockerfile's name in
// it. src is a directory (its .dockerignore honoured) or "-" (a tar or a
// lone Dockerfile on stdin); file "-" reads the Dockerfile from stdin.
func (c *Cli) buildContext(src, file string) (io.Reader, string, error) {
	if src == "-" {
		if file == "-" {
			return nil, "", StatusError{Status: "invalid argument: can't use stdin for both build context and dockerfile", Code: 125}
		}
		br := bufio.NewReader(c.In)
		head, _ := br.Peek(512)
		if isTarOrCompressed(head) {
			return br, file, nil
		}
		df, err := io.ReadAll(br)
		if err != nil {
			return nil, "", err
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := addFile(tw, "Dockerfile", df); err != nil {
			return nil, "", err
		}
		return &buf, "Dockerfile", tw.Close()
	}
	dir, err := filepath.Abs(src)
	if err != nil {
		return nil, "", err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, "", StatusError{Status: fmt.Sprintf("unable to prepare context: path %q not found", src), Code: 1}
	}
	var extra []byte
	name := file
	switch {
	case file == "-":
		if extra, err = io.ReadAll(c.In); err != nil {
			return nil, "", err
		}
		name = ".dockerfile." + randHex()
	case file != "":
		abs, err := filepath.Abs(file)
		if err != nil {
			return nil, "", err
		}
		rel, err := filepath.Rel(dir, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			// A Dockerfile outside the context travels inside it under a
			// name of its own, as docker does.
			if extra, err = os.ReadFile(abs); err != nil {
				return nil, "", fmt.Errorf("unable to prepare context: %w", err)
			}
			name = ".dockerfile." + randHex()
		} else {
			name = filepath.ToSlash(rel)
		}
	}
	pm, err := dockerignore(dir)
	if err != nil {
		return nil, "", err
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tarDir(tw, dir, pm, name)
		if err == nil && extra != nil {
			err = addFile(tw, name, extra)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, name, nil
}

func randHex() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func isTarOrCompressed(head []byte) bool {
	if len(head) >= 262 && string(head[257:262]) == "ustar" {
		return true
	}
	for _, magic := range [][]byte{{0x1f, 0x8b}, []byte("BZh"), {0xfd, '7', 'z', 'X', 'Z'}, {0x28, 0xb5, 0x2f, 0xfd}} {
		if bytes.HasPrefix(head, magic) {
			return true
		}
	}
	return false
}

func addFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

// dockerignore reads the context's .dockerignore (nil when none).
func dockerignore(dir string) (*patternmatcher.PatternMatcher, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("invalid .dockerignore: %w", err)
	}
	return pm, nil
}

// tarDir writes the context dir without what .dockerignore excludes (the
// Dockerfile and .dockerignore always go, as docker sends them).
func tarDir(tw *tar.Writer, dir string, pm *patternmatcher.PatternMatcher, dockerfile string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if pm != nil && rel != ".dockerignore" && rel != dockerfile {
			excluded, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				return err
			}
			if excluded {
				if d.IsDir() && !pm.Exclusions() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return writeTarEntry(tw, p, rel, fi)
	})
}

// gzipped compresses r as it is read (--compress: a smaller upload to a
// remote daemon; berthd takes a plain or compressed context).
func gzipped(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		zw := gzip.NewWriter(pw)
		_, err := io.Copy(zw, r)
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	return pr
}
