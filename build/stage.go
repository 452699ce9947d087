package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/pull"
	"github.com/berth-dev/berth/image/service"
	"github.com/berth-dev/berth/image/store"
)

// builtinArgs may be passed with --build-arg without an ARG: the proxy
// variables (kept out of the image's history, as Docker does).
var builtinArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// job is one build under way.
type job struct {
	b      *Builder
	o      Options
	p      *parsed
	ctxDir string
	out    io.Writer
	// secrets are the build's secrets (nil: none sent).
	secrets *secretStore

	mu       sync.Mutex
	usedArgs map[string]bool
	step     int
	total    int
	meta     map[string]string // global ARG values (for FROM)
	results  []stageResult
	// cacheFrom are the --cache-from images.
	cacheFrom *cacheSources
	stageIdx  map[string]int // lower-case stage name -> index
	// target is the target platform, host the one builds run on.
	target, host ocispec.Platform
}

// stageResult is a built stage's image, ready when done is closed.
type stageResult struct {
	done chan struct{}
	id   string
	err  error
	// plat is the stage's platform (a stage based on it inherits it),
	// explicit whether one was asked for.
	plat     ocispec.Platform
	explicit bool
}

func (j *job) run(ctx context.Context) (string, error) {
	j.stageIdx = map[string]int{}
	for i, s := range j.p.stages {
		if s.Name != "" {
			j.stageIdx[strings.ToLower(s.Name)] = i
		}
	}
	if err := j.globalArgs(); err != nil {
		return "", err
	}
	j.loadCacheFrom(ctx)
	target := len(j.p.stages) - 1
	if j.o.Target != "" {
		i, ok := j.stageIdx[strings.ToLower(j.o.Target)]
		if !ok {
			return "", fmt.Errorf("failed to reach build target %s in Dockerfile: %w", j.o.Target, errdefs.ErrInvalidArgument)
		}
		target = i
	}
	need, err := j.needed(target)
	if err != nil {
		return "", err
	}
	j.results = make([]stageResult, len(j.p.stages))
	for i := range j.results {
		j.results[i].done = make(chan struct{})
	}
	for i := range need {
		if need[i] {
			j.total += 1 + len(j.p.stages[i].Commands)
		}
	}
	if len(j.o.Labels) > 0 {
		j.total++
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Stages run in parallel; each waits for the stages it reads from.
	var wg sync.WaitGroup
	for i := range j.p.stages {
		if !need[i] {
			close(j.results[i].done)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := j.buildStage(ctx, i, i == target)
			j.results[i].id, j.results[i].err = id, err
			if err != nil {
				cancel()
			}
			close(j.results[i].done)
		}()
	}
	wg.Wait()
	// The first error in stage order that is not a consequence of
	// another (a stage waiting on it, or stopped because it failed) is
	// the cause.
	for i := range j.results {
		if err := j.results[i].err; err != nil && !errors.Is(err, errDependency) && !errors.Is(err, context.Canceled) {
			return "", err
		}
	}
	for i := range j.results {
		if err := j.results[i].err; err != nil {
			return "", err
		}
	}
	if j.results[target].id == "" {
		return "", fmt.Errorf("No image was generated. Is your Dockerfile empty?: %w", errdefs.ErrInvalidArgument)
	}
	return j.results[target].id, nil
}

// errDependency marks a stage that failed because one it reads from did.
var errDependency = errors.New("a stage this one depends on failed")

// globalArgs evaluates the ARGs before the first FROM.
func (j *job) globalArgs() error {
	j.meta = map[string]string{}
	j.host = pull.DefaultPlatform()
	j.target = j.host
	if j.o.Platform != "" {
		p, err := pull.ParsePlatform(j.o.Platform)
		if err != nil {
			return fmt.Errorf("--platform: %w", err)
		}
		if p.OS != "linux" {
			return fmt.Errorf("--platform=%s: only linux images can be built: %w", j.o.Platform, errdefs.ErrInvalidArgument)
		}
		j.target = p
	}
	// BuildKit's automatic platform args, its platforms normalised as
	// containerd's (arm64's default variant v8 is no variant).
	for prefix, p := range map[string]ocispec.Platform{"TARGET": argPlatform(j.target), "BUILD": argPlatform(j.host)} {
		j.meta[prefix+"PLATFORM"] = pull.FormatPlatform(p)
		j.meta[prefix+"OS"] = p.OS
		j.meta[prefix+"ARCH"] = p.Architecture
		j.meta[prefix+"VARIANT"] = p.Variant
	}
	lex := shell.NewLex(j.p.escape)
	for _, a := range j.p.metaArgs {
		for _, kv := range a.Args {
			if v, ok := j.buildArg(kv.Key); ok {
				j.meta[kv.Key] = v
				continue
			}
			if kv.Value == nil {
				continue
			}
			v, _, err := lex.ProcessWord(*kv.Value, envMap(j.meta))
			if err != nil {
				return fmt.Errorf("ARG %s: %w: %w", kv.Key, err, errdefs.ErrInvalidArgument)
			}
			j.meta[kv.Key] = v
		}
	}
	return nil
}

// argPlatform is p as BuildKit's platform args show it.
func argPlatform(p ocispec.Platform) ocispec.Platform {
	if p.Architecture == "arm64" && p.Variant == "v8" {
		p.Variant = ""
	}
	return p
}

// buildArg is the --build-arg value of name (used, for the warning).
func (j *job) buildArg(name string) (string, bool) {
	v, ok := j.o.BuildArgs[name]
	if !ok || v == nil {
		return "", false
	}
	j.mu.Lock()
	j.usedArgs[name] = true
	j.mu.Unlock()
	return *v, true
}

// stageRef resolves a FROM or --from name to a stage index, or -1.
func (j *job) stageRef(name string, before int) (int, error) {
	if i, ok := j.stageIdx[strings.ToLower(name)]; ok {
		if i >= before {
			return -1, fmt.Errorf("stage %q is not defined before its use: %w", name, errdefs.ErrInvalidArgument)
		}
		return i, nil
	}
	if n, err := strconv.Atoi(name); err == nil {
		if n < 0 || n >= before {
			return -1, fmt.Errorf("invalid stage index %d (the stage must come before its use): %w", n, errdefs.ErrInvalidArgument)
		}
		return n, nil
	}
	return -1, nil
}

// needed marks the stages the target reads from, directly or not
// (others are skipped, as BuildKit does).
func (j *job) needed(target int) ([]bool, error) {
	need := make([]bool, len(j.p.stages))
	var visit func(i int) error
	visit = func(i int) error {
		if need[i] {
			return nil
		}
		need[i] = true
		deps, err := j.deps(i)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		return nil
	}
	return need, visit(target)
}

// deps are the stages stage i reads from: its base and COPY --from /
// RUN --mount from= stages (names with global args expanded).
func (j *job) deps(i int) ([]int, error) {
	lex := shell.NewLex(j.p.escape)
	var out []int
	add := func(name string, numeric bool) error {
		name, _, err := lex.ProcessWord(name, envMap(j.meta))
		if err != nil {
			return err
		}
		if !numeric {
			if k, ok := j.stageIdx[strings.ToLower(name)]; ok && k < i {
				out = append(out, k)
			}
			return nil
		}
		k, err := j.stageRef(name, i)
		if err != nil {
			return err
		}
		if k >= 0 {
			out = append(out, k)
		}
		return nil
	}
	s := j.p.stages[i]
	if err := add(s.BaseName, false); err != nil {
		return nil, err
	}
	for _, c := range s.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != "" {
				if err := add(c.From, true); err != nil {
					return nil, err
				}
			}
		case *instructions.RunCommand:
			for _, m := range instructions.GetMounts(c) {
				if m.From != "" {
					if err := add(m.From, true); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return out, nil
}

// stageState is a stage's state between steps.
type stageState struct {
	idx  int
	plat ocispec.Platform // the stage's platform
	// explicit: the platform was asked for (FROM --platform, --platform):
	// images are then read for it, else as they are here.
	explicit bool
	img      string // last image made or reused ("" = scratch, nothing yet)
	cfg      container.Config
	hist     []ocispec.History // metadata steps since img
	// dirty says cfg or hist changed since img.
	dirty  bool
	key    string
	args   map[string]string // declared ARGs with a value
	argSeq []string          // declaration order
	cmdSet bool
}

func (j *job) printStep(c fmt.Stringer) {
	j.mu.Lock()
	j.step++
	n := j.step
	j.mu.Unlock()
	fmt.Fprintf(j.out, "Step %d/%d : %s\n", n, j.total, c.String())
}

type stringer string

func (s stringer) String() string { return string(s) }

// buildStage runs stage i and returns its image.
func (j *job) buildStage(ctx context.Context, i int, final bool) (string, error) {
	s := j.p.stages[i]
	deps, err := j.deps(i)
	if err != nil {
		return "", err
	}
	for _, d := range deps {
		select {
		case <-j.results[d].done:
			if j.results[d].err != nil {
				return "", errDependency
			}
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	st := &stageState{idx: i, args: map[string]string{}}
	j.printStep(stringer(s.SourceCode))
	if err := j.from(ctx, st, s); err != nil {
		return "", withLine(j.p.name, s.Location, err)
	}
	// Read only by the stages waiting for this one's done.
	j.results[i].plat, j.results[i].explicit = st.plat, st.explicit
	for _, c := range s.Commands {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		j.printStep(stringer(fmt.Sprint(c)))
		if err := j.dispatch(ctx, st, c); err != nil {
			return "", withLine(j.p.name, c.Location(), err)
		}
	}
	if final && len(j.o.Labels) > 0 {
		keys := slices.Sorted(maps.Keys(j.o.Labels))
		var parts []string
		for _, k := range keys {
			parts = append(parts, strconv.Quote(k)+"="+strconv.Quote(j.o.Labels[k]))
		}
		line := "LABEL " + strings.Join(parts, " ")
		j.printStep(stringer(line))
		if st.cfg.Labels == nil {
			st.cfg.Labels = map[string]string{}
		}
		maps.Copy(st.cfg.Labels, j.o.Labels)
		j.meta2(st, line)
	}
	if err := j.commitMeta(ctx, st); err != nil {
		return "", err
	}
	return st.img, nil
}

// withLine names the Dockerfile line of a failed step.
func withLine(name string, loc []parser.Range, err error) error {
	if len(loc) == 0 || errors.Is(err, errDependency) || errors.Is(err, context.Canceled) {
		return err
	}
	return &stepError{msg: fmt.Sprintf("%s:%d", name, loc[0].Start.Line), err: err}
}

type stepError struct {
	msg string
	err error
}

func (e *stepError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// from starts the stage from its base: another stage, scratch or an
// image (pulled when missing or with --pull), then runs the base's
// ONBUILD triggers.
func (j *job) from(ctx context.Context, st *stageState, s instructions.Stage) error {
	lex := shell.NewLex(j.p.escape)
	name, _, err := lex.ProcessWord(s.BaseName, envMap(j.meta))
	if err != nil {
		return fmt.Errorf("FROM %s: %w: %w", s.BaseName, err, errdefs.ErrInvalidArgument)
	}
	if name == "" {
		return fmt.Errorf("base name (%s) should not be blank: %w", s.BaseName, errdefs.ErrInvalidArgument)
	}
	st.plat = j.target
	st.explicit = s.Platform != "" || j.o.Platform != ""
	if s.Platform != "" {
		word, _, err := lex.ProcessWord(s.Platform, envMap(j.meta))
		if err != nil {
			return fmt.Errorf("FROM --platform=%s: %w: %w", s.Platform, err, errdefs.ErrInvalidArgument)
		}
		if st.plat, err = pull.ParsePlatform(word); err != nil {
			return fmt.Errorf("FROM --platform=%s: %w", s.Platform, err)
		}
		if st.plat.OS != "linux" {
			return fmt.Errorf("FROM --platform=%s: only linux images can be built: %w", word, errdefs.ErrInvalidArgument)
		}
	}
	// A scratch stage's platform is in its key: the same steps on
	// another platform make another image.
	scratchKey := stepKey("", "scratch", pull.FormatPlatform(st.plat))
	if k, ok := j.stageIdx[strings.ToLower(name)]; ok && k < st.idx {
		// A stage on another one has its platform, as BuildKit.
		st.plat, st.explicit = j.results[k].plat, j.results[k].explicit
		scratchKey = stepKey("", "scratch", pull.FormatPlatform(st.plat))
		id := j.results[k].id
		if id == "" {
			st.key = scratchKey
			return nil
		}
		return j.setBase(ctx, st, id)
	}
	if strings.EqualFold(name, "scratch") {
		st.key = scratchKey
		fmt.Fprintf(j.out, " ---> scratch\n")
		return nil
	}
	img, err := j.stageImage(ctx, name, st, j.o.Pull)
	if err != nil {
		return err
	}
	if !st.explicit && img.Platform.Architecture != "" {
		// The stage runs what its image is for.
		goos := img.Platform.OS
		if goos == "" {
			goos = "linux"
		}
		if p, err := pull.ParsePlatform(pull.FormatPlatform(ocispec.Platform{OS: goos, Architecture: img.Platform.Architecture, Variant: img.Platform.Variant})); err == nil {
			st.plat = p
		}
	}
	return j.setBase(ctx, st, img.ID.String())
}

// stageImage finds an image a stage reads (FROM, --from): for the
// stage's platform when one was asked for; else the local image
// whatever its platform (as dockerd), pulled for the host when missing
// or when pullAlways.
func (j *job) stageImage(ctx context.Context, name string, st *stageState, pullAlways bool) (store.Image, error) {
	if st.explicit {
		return j.platformImage(ctx, name, st.plat, pullAlways)
	}
	if !pullAlways {
		img, err := j.b.cfg.Images.Get(ctx, name)
		if err == nil || !errdefs.IsNotFound(err) {
			return img, err
		}
	}
	return j.platformImage(ctx, name, j.host, true)
}

// platformImage finds an image by name for platform p: the local image
// or p's manifest of its index, else (or when pull) pulled for p.
func (j *job) platformImage(ctx context.Context, name string, p ocispec.Platform, pullAlways bool) (store.Image, error) {
	if !pullAlways {
		img, err := j.b.cfg.Images.BuildBaseImage(ctx, name, p)
		if err == nil || !errdefs.IsNotFound(err) {
			return img, err
		}
	}
	plat := pull.FormatPlatform(p)
	fmt.Fprintf(j.out, "Pulling %s (%s)\n", name, plat)
	img, err := j.b.cfg.Images.Pull(ctx, name, service.PullOptions{Platform: plat})
	if err != nil {
		return store.Image{}, fmt.Errorf("pull %s for %s: %w", name, plat, err)
	}
	return img, nil
}

func (j *job) setBase(ctx context.Context, st *stageState, id string) error {
	img, cfg, err := j.b.cfg.Images.BuildImageConfig(ctx, id)
	if err != nil {
		return err
	}
	st.img = img.ID.String()
	st.cfg = *cfg
	st.key = stepKey("", "from", st.img)
	fmt.Fprintf(j.out, " ---> %s\n", shortID(st.img))
	triggers := st.cfg.OnBuild
	st.cfg.OnBuild = nil
	if len(triggers) > 0 {
		st.dirty = true
		st.key = stepKey(st.key, "onbuild-consumed")
	}
	for _, t := range triggers {
		fmt.Fprintf(j.out, "# Executing 1 build trigger\n")
		res, err := parser.Parse(strings.NewReader(t))
		if err != nil {
			return fmt.Errorf("ONBUILD trigger %q: %w", t, err)
		}
		for _, n := range res.AST.Children {
			c, err := instructions.ParseCommand(n)
			if err != nil {
				return fmt.Errorf("ONBUILD trigger %q: %w", t, err)
			}
			if err := j.dispatch(ctx, st, c); err != nil {
				return fmt.Errorf("ONBUILD trigger %q: %w", t, err)
			}
		}
	}
	return nil
}

// envList is the stage's variables for expansion: ARGs, then ENV over
// them.
type envList struct {
	m    map[string]string
	keys []string
}

func (e envList) Get(k string) (string, bool) { v, ok := e.m[k]; return v, ok }
func (e envList) Keys() []string              { return e.keys }

func envMap(m map[string]string) envList {
	return envList{m: m, keys: slices.Sorted(maps.Keys(m))}
}

func (st *stageState) vars() envList {
	m := map[string]string{}
	maps.Copy(m, st.args)
	for _, kv := range st.cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return envMap(m)
}

// runArgsEnv are the ARG values a RUN sees as environment (ENV wins), in
// declaration order.
func (st *stageState) runArgsEnv() []string {
	var out []string
	for _, k := range st.argSeq {
		v, ok := st.args[k]
		if !ok || envHas(st.cfg.Env, k) {
			continue
		}
		out = append(out, k+"="+v)
	}
	return out
}

func envHas(env []string, k string) bool {
	for _, kv := range env {
		if kk, _, _ := strings.Cut(kv, "="); kk == k {
			return true
		}
	}
	return false
}

func setEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if kk, _, _ := strings.Cut(kv, "="); kk == k {
			out := slices.Clone(env)
			out[i] = k + "=" + v
			return out
		}
	}
	return append(slices.Clone(env), k+"="+v)
}

// dispatch runs one instruction.
func (j *job) dispatch(ctx context.Context, st *stageState, c instructions.Command) error {
	if e, ok := c.(instructions.SupportsSingleWordExpansion); ok {
		lex := shell.NewLex(j.p.escape)
		vars := st.vars()
		if err := e.Expand(func(w string) (string, error) {
			r, _, err := lex.ProcessWord(w, vars)
			return r, err
		}); err != nil {
			return fmt.Errorf("%s: %w: %w", c.Name(), err, errdefs.ErrInvalidArgument)
		}
	}
	switch c := c.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			st.cfg.Env = setEnv(st.cfg.Env, kv.Key, kv.Value)
		}
		var parts []string
		for _, kv := range c.Env {
			parts = append(parts, kv.Key+"="+kv.Value)
		}
		j.meta2(st, "ENV "+strings.Join(parts, " "))
	case *instructions.LabelCommand:
		if st.cfg.Labels == nil {
			st.cfg.Labels = map[string]string{}
		}
		var parts []string
		for _, kv := range c.Labels {
			st.cfg.Labels[kv.Key] = kv.Value
			parts = append(parts, strconv.Quote(kv.Key)+"="+strconv.Quote(kv.Value))
		}
		j.meta2(st, "LABEL "+strings.Join(parts, " "))
	case *instructions.MaintainerCommand:
		j.meta2(st, "MAINTAINER "+c.Maintainer)
	case *instructions.ArgCommand:
		var names []string
		for _, kv := range c.Args {
			names = append(names, kv.Key)
			if !slices.Contains(st.argSeq, kv.Key) {
				st.argSeq = append(st.argSeq, kv.Key)
			}
			if v, ok := j.buildArg(kv.Key); ok {
				st.args[kv.Key] = v
			} else if kv.Value != nil {
				st.args[kv.Key] = *kv.Value
			} else if v, ok := j.meta[kv.Key]; ok {
				st.args[kv.Key] = v
			}
		}
		// ARG adds no history entry (as dockerd). Its value is in the
		// key of the steps that use it (RUN's environment, expanded
		// words), so a new value misses the cache there first.
		st.key = stepKey(st.key, "ARG", names)
	case *instructions.WorkdirCommand:
		p := c.Path
		if !path.IsAbs(p) {
			base := st.cfg.WorkingDir
			if base == "" {
				base = "/"
			}
			p = path.Join(base, p)
		}
		st.cfg.WorkingDir = path.Clean(p)
		j.meta2(st, "WORKDIR "+st.cfg.WorkingDir)
	case *instructions.UserCommand:
		st.cfg.User = c.User
		j.meta2(st, "USER "+c.User)
	case *instructions.CmdCommand:
		st.cfg.Cmd = st.commandLine(c.ShellDependantCmdLine)
		st.cmdSet = true
		j.meta2(st, "CMD "+jsonString(st.cfg.Cmd))
	case *instructions.EntrypointCommand:
		st.cfg.Entrypoint = st.commandLine(c.ShellDependantCmdLine)
		if !st.cmdSet {
			// A base's CMD does not apply to a new ENTRYPOINT.
			st.cfg.Cmd = nil
		}
		j.meta2(st, "ENTRYPOINT "+jsonString(st.cfg.Entrypoint))
	case *instructions.ExposeCommand:
		if st.cfg.ExposedPorts == nil {
			st.cfg.ExposedPorts = network.PortSet{}
		}
		var names, words []string
		lex := shell.NewLex(j.p.escape)
		for _, p := range c.Ports {
			// EXPOSE expands variables (into several words even).
			ws, err := lex.ProcessWords(p, st.vars())
			if err != nil {
				return fmt.Errorf("EXPOSE %s: %w: %w", p, err, errdefs.ErrInvalidArgument)
			}
			words = append(words, ws...)
		}
		for _, p := range words {
			ports, err := parsePorts(p)
			if err != nil {
				return err
			}
			for _, port := range ports {
				st.cfg.ExposedPorts[port] = struct{}{}
				names = append(names, port.String())
			}
		}
		j.meta2(st, "EXPOSE "+strings.Join(names, " "))
	case *instructions.VolumeCommand:
		if st.cfg.Volumes == nil {
			st.cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if strings.TrimSpace(v) == "" {
				return fmt.Errorf("VOLUME specified can not be an empty string: %w", errdefs.ErrInvalidArgument)
			}
			st.cfg.Volumes[v] = struct{}{}
		}
		j.meta2(st, "VOLUME "+jsonString(c.Volumes))
	case *instructions.StopSignalCommand:
		if _, err := spec.ParseSignal(c.Signal); err != nil {
			return err
		}
		st.cfg.StopSignal = c.Signal
		j.meta2(st, "STOPSIGNAL "+c.Signal)
	case *instructions.HealthCheckCommand:
		hc := *c.Health
		st.cfg.Healthcheck = &hc
		j.meta2(st, "HEALTHCHECK "+jsonString(hc))
	case *instructions.ShellCommand:
		st.cfg.Shell = slices.Clone(c.Shell)
		j.meta2(st, "SHELL "+jsonString(c.Shell))
	case *instructions.OnbuildCommand:
		st.cfg.OnBuild = append(slices.Clone(st.cfg.OnBuild), c.Expression)
		j.meta2(st, "ONBUILD "+c.Expression)
	case *instructions.RunCommand:
		return j.runStep(ctx, st, c)
	case *instructions.CopyCommand:
		return j.copyStep(ctx, st, copyArgs{SourcesAndDest: c.SourcesAndDest, From: c.From, Chown: c.Chown, Chmod: c.Chmod, Parents: c.Parents, Exclude: c.ExcludePatterns, Link: c.Link}, "COPY")
	case *instructions.AddCommand:
		// Local archives are unpacked unless --unpack=false; downloads
		// and git checkouts only with --unpack=true (as BuildKit).
		unpack := c.Unpack == nil || *c.Unpack
		return j.copyStep(ctx, st, copyArgs{SourcesAndDest: c.SourcesAndDest, Chown: c.Chown, Chmod: c.Chmod, Exclude: c.ExcludePatterns, Link: c.Link,
			Add: true, Unpack: unpack, UnpackRemote: c.Unpack != nil && *c.Unpack, Checksum: c.Checksum, KeepGitDir: c.KeepGitDir != nil && *c.KeepGitDir}, "ADD")
	default:
		return fmt.Errorf("instruction %s is not supported: %w", strings.ToUpper(c.Name()), errdefs.ErrNotImplemented)
	}
	return nil
}

// meta2 records a metadata-only step: a history entry, no layer.
func (j *job) meta2(st *stageState, line string) {
	st.hist = append(st.hist, ocispec.History{CreatedBy: "/bin/sh -c #(nop)  " + line, EmptyLayer: true})
	st.dirty = true
	cfg, _ := json.Marshal(st.cfg)
	st.key = stepKey(st.key, "meta", line, string(cfg))
}

// commitMeta makes the image of the metadata steps at the end of a stage
// (cached like any step).
func (j *job) commitMeta(ctx context.Context, st *stageState) error {
	if !st.dirty {
		return nil
	}
	if id := j.cached(ctx, st.key); id != "" {
		st.img, st.hist, st.dirty = id, nil, false
		return nil
	}
	id, err := j.finalFromCacheSources(ctx, st)
	if err != nil {
		return err
	}
	if id != "" {
		st.img, st.hist, st.dirty = id, nil, false
		return j.b.cache.put(st.key, st.img)
	}
	cfg := st.cfg
	img, err := j.b.cfg.Images.BuildCommit(ctx, service.BuildCommitOptions{Parent: st.img, Config: &cfg, History: st.hist, Platform: &st.plat})
	if err != nil {
		return err
	}
	st.img, st.hist, st.dirty = img.ID.String(), nil, false
	return j.b.cache.put(st.key, st.img)
}

// cached returns the image cached under key if it still exists.
func (j *job) cached(ctx context.Context, key string) string {
	if j.o.NoCache {
		return ""
	}
	id := j.b.cache.get(key)
	if id == "" {
		return ""
	}
	if _, err := j.b.cfg.Images.Get(ctx, id); err != nil {
		return ""
	}
	return id
}

// commandLine is CMD/ENTRYPOINT/RUN's argv: the exec form as given, the
// shell form run by the stage's SHELL.
func (st *stageState) commandLine(c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return slices.Clone(c.CmdLine)
	}
	sh := st.cfg.Shell
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
	}
	return append(slices.Clone(sh), strings.Join(c.CmdLine, " "))
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// parsePorts parses an EXPOSE word: "80", "80/udp", "8000-8002/tcp".
func parsePorts(s string) ([]network.Port, error) {
	num, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	lo, hi, isRange := strings.Cut(num, "-")
	if !isRange {
		hi = lo
	}
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || b < a {
		return nil, fmt.Errorf("invalid containerPort: %s: %w", s, errdefs.ErrInvalidArgument)
	}
	var out []network.Port
	for p := a; p <= b; p++ {
		port, err := network.ParsePort(fmt.Sprintf("%d/%s", p, strings.ToLower(proto)))
		if err != nil {
			return nil, fmt.Errorf("invalid port %s: %w: %w", s, err, errdefs.ErrInvalidArgument)
		}
		out = append(out, port)
	}
	return out, nil
}
