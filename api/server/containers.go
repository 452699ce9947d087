package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/api/stream"
)

func (s *Server) containerCreate(w http.ResponseWriter, r *http.Request) error {
	var req createRequest
	empty, err := readJSON(w, r, &req, false)
	if err != nil {
		return err
	}
	if empty || req.Config == nil {
		return invalid("config cannot be empty in order to create a container")
	}
	if req.Cmd != nil {
		req.Config.Cmd = req.Cmd
	}
	if req.Entrypoint != nil {
		req.Config.Entrypoint = req.Entrypoint
	}
	create := ContainerCreateRequest{
		Name:             r.FormValue("name"),
		Config:           req.Config,
		HostConfig:       req.HostConfig,
		NetworkingConfig: req.NetworkingConfig,
	}
	if create.HostConfig == nil {
		create.HostConfig = &container.HostConfig{}
	}
	if err := moveMacAddress(&create, req.MacAddress); err != nil {
		return err
	}
	if versionBefore(r.Context(), "1.42") {
		// CreateMountpoint came with 1.42: older clients never meant it.
		for i := range create.HostConfig.Mounts {
			if bo := create.HostConfig.Mounts[i].BindOptions; bo != nil {
				bo.CreateMountpoint = false
			}
		}
	}
	if p := r.FormValue("platform"); p != "" {
		plat, err := parsePlatform(p)
		if err != nil {
			return err
		}
		create.Platform = &plat
	}
	resp, err := s.b.Containers.ContainerCreate(r.Context(), create)
	if err != nil {
		return err
	}
	if resp.Warnings == nil {
		resp.Warnings = []string{}
	}
	if req.kernelMemory != 0 {
		resp.Warnings = append(resp.Warnings, kernelMemoryWarning())
	}
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// parsePlatform reads "os[/arch[/variant]]".
func parsePlatform(p string) (ocispec.Platform, error) {
	parts := strings.Split(strings.ToLower(p), "/")
	if len(parts) > 3 || parts[0] == "" || slicesHasEmpty(parts) {
		return ocispec.Platform{}, invalid("invalid platform %q: expected os[/arch[/variant]]", p)
	}
	plat := ocispec.Platform{OS: parts[0]}
	if len(parts) > 1 {
		plat.Architecture = parts[1]
	}
	if len(parts) > 2 {
		plat.Variant = parts[2]
	}
	return plat, nil
}

func slicesHasEmpty(ss []string) bool {
	for _, s := range ss {
		if s == "" {
			return true
		}
	}
	return false
}

var containerListFilters = []string{"ancestor", "annotation", "before", "exited", "expose", "health", "id", "isolation", "is-task", "label", "name", "network", "publish", "since", "status", "volume"}

func (s *Server) containerList(w http.ResponseWriter, r *http.Request) error {
	f, err := filtersOf(r)
	if err != nil {
		return err
	}
	if err := f.Validate(containerListFilters...); err != nil {
		return err
	}
	limit, err := intValue(r, "limit", 0)
	if err != nil {
		return err
	}
	list, err := s.b.Containers.ContainerList(r.Context(), ListOptions{
		All: boolValue(r, "all"), Limit: int(limit), Size: boolValue(r, "size"), Filters: f,
	})
	if err != nil {
		return err
	}
	if list == nil {
		list = []container.Summary{}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) containerInspect(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.b.Containers.ContainerInspect(r.Context(), r.PathValue("name"), boolValue(r, "size"))
	if err != nil {
		return err
	}
	if versionBefore(r.Context(), "1.52") {
		writeJSON(w, http.StatusOK, withLegacyNetworkSettings(resp))
		return nil
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) containerStart(w http.ResponseWriter, r *http.Request) error {
	// A body (a HostConfig) was removed in API 1.24.
	if r.ContentLength > 0 {
		return invalid("starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24")
	}
	if err := s.b.Containers.ContainerStart(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func stopOptions(r *http.Request) (StopOptions, error) {
	opts := StopOptions{Signal: r.FormValue("signal")}
	if t := r.FormValue("t"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil {
			return opts, invalid("invalid value for t: %q", t)
		}
		opts.Timeout = &n
	}
	return opts, nil
}

func (s *Server) containerStop(w http.ResponseWriter, r *http.Request) error {
	opts, err := stopOptions(r)
	if err != nil {
		return err
	}
	if err := s.b.Containers.ContainerStop(r.Context(), r.PathValue("name"), opts); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerRestart(w http.ResponseWriter, r *http.Request) error {
	opts, err := stopOptions(r)
	if err != nil {
		return err
	}
	if err := s.b.Containers.ContainerRestart(r.Context(), r.PathValue("name"), opts); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerKill(w http.ResponseWriter, r *http.Request) error {
	if err := s.b.Containers.ContainerKill(r.Context(), r.PathValue("name"), r.FormValue("signal")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// containerWait registers the wait, then sends the 200 header at once (as
// dockerd, so that `docker run` knows the wait is in place before it
// starts the container) and the result when the condition is met.
func (s *Server) containerWait(w http.ResponseWriter, r *http.Request) error {
	cond := container.WaitCondition(r.FormValue("condition"))
	switch cond {
	case "":
		cond = container.WaitConditionNotRunning
	case container.WaitConditionNotRunning, container.WaitConditionNextExit, container.WaitConditionRemoved:
	default:
		return invalid("invalid condition: %q", string(cond))
	}
	ch, err := s.b.Containers.ContainerWait(r.Context(), r.PathValue("name"), cond)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			resp = container.WaitResponse{StatusCode: -1, Error: &container.WaitExitError{Message: "wait ended without a result"}}
		}
		return json.NewEncoder(w).Encode(resp)
	case <-r.Context().Done():
		return nil
	}
}

func (s *Server) containerRemove(w http.ResponseWriter, r *http.Request) error {
	opts := RemoveOptions{RemoveVolumes: boolValue(r, "v"), RemoveLinks: boolValue(r, "link"), Force: boolValue(r, "force")}
	if err := s.b.Containers.ContainerRemove(r.Context(), r.PathValue("name"), opts); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) error {
	opts := LogsOptions{
		ShowStdout: boolValue(r, "stdout"), ShowStderr: boolValue(r, "stderr"),
		Timestamps: boolValue(r, "timestamps"), Follow: boolValue(r, "follow"),
		Details: boolValue(r, "details"), Tail: -1,
	}
	if !opts.ShowStdout && !opts.ShowStderr {
		return invalid("Bad parameters: you must choose at least one stream")
	}
	var err error
	if opts.Since, err = parseTimestamp(r.FormValue("since")); err != nil {
		return err
	}
	if opts.Until, err = parseTimestamp(r.FormValue("until")); err != nil {
		return err
	}
	if t := r.FormValue("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			n = -1 // dockerd reads a bad tail as "all"
		}
		opts.Tail = n
	}
	started := false
	opts.Streams = func(tty bool) (io.Writer, io.Writer) {
		started = true
		ct := stream.MediaTypeRawStream
		if !tty && !versionBefore(r.Context(), "1.42") {
			ct = stream.MediaTypeMultiplexedStream
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		fw := newFlushWriter(w)
		if tty {
			return fw, fw
		}
		m := stream.NewMultiplexer(fw)
		return m.Writer(stream.Stdout), m.Writer(stream.Stderr)
	}
	err = s.b.Containers.ContainerLogs(r.Context(), r.PathValue("name"), opts)
	if err != nil && started {
		// In band, as dockerd does once the stream started.
		fmt.Fprintf(newFlushWriter(w), "Error grabbing logs: %v\n", err)
		return nil
	}
	return err
}

func attachOptions(r *http.Request) AttachOptions {
	return AttachOptions{
		Stream: boolValue(r, "stream"), Logs: boolValue(r, "logs"),
		UseStdin: boolValue(r, "stdin"), UseStdout: boolValue(r, "stdout"), UseStderr: boolValue(r, "stderr"),
		DetachKeys: r.FormValue("detachKeys"),
	}
}

// containerAttach takes the connection over once the backend knows the
// container (and its TTY setting), as dockerd does.
func (s *Server) containerAttach(w http.ResponseWriter, r *http.Request) error {
	opts := attachOptions(r)
	_, upgrade := r.Header["Upgrade"]
	var conn *stream.Conn
	opts.Streams = func(tty bool) (io.ReadCloser, io.Writer, io.Writer, error) {
		if conn != nil {
			return nil, nil, nil, errors.New("attach streams requested twice")
		}
		ct := stream.MediaTypeRawStream
		if upgrade && !tty && !versionBefore(r.Context(), "1.42") {
			ct = stream.MediaTypeMultiplexedStream
		}
		c, err := stream.Hijack(w, r, ct)
		if err != nil {
			return nil, nil, nil, err
		}
		conn = c
		var stdin io.ReadCloser
		if opts.UseStdin {
			stdin = c
		}
		if tty {
			return stdin, c, c, nil
		}
		m := stream.NewMultiplexer(c)
		return stdin, m.Writer(stream.Stdout), m.Writer(stream.Stderr), nil
	}
	err := s.b.Containers.ContainerAttach(r.Context(), r.PathValue("name"), opts)
	if conn == nil {
		return err
	}
	if err != nil {
		fmt.Fprintf(conn, "Error attaching: %s\n", MessageOf(err))
	}
	conn.Close()
	return nil
}

// createRequest is a create body; Cmd and Entrypoint may be a string as
// well as a list, as Docker's API has always taken them (a string is a
// list of one).
type createRequest struct {
	container.CreateRequest
	Cmd        strSlice
	Entrypoint strSlice
	// kernelMemory is HostConfig.KernelMemory (see UnmarshalJSON).
	kernelMemory int64
	// MacAddress is the container-wide --mac-address of API < 1.44.
	MacAddress string
}

// strSlice is a JSON list of strings, or a string.
type strSlice []string

func (s *strSlice) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	if list == nil {
		list = []string{}
	}
	*s = list
	return nil
}

func resizeArgs(r *http.Request) (uint, uint, error) {
	h, err := strconv.ParseUint(r.FormValue("h"), 10, 32)
	if err != nil {
		return 0, 0, invalid("strconv.Atoi: parsing %q: invalid syntax", r.FormValue("h"))
	}
	wd, err := strconv.ParseUint(r.FormValue("w"), 10, 32)
	if err != nil {
		return 0, 0, invalid("strconv.Atoi: parsing %q: invalid syntax", r.FormValue("w"))
	}
	return uint(h), uint(wd), nil
}

func (s *Server) containerResize(w http.ResponseWriter, r *http.Request) error {
	h, wd, err := resizeArgs(r)
	if err != nil {
		return err
	}
	if err := s.b.Containers.ContainerResize(r.Context(), r.PathValue("name"), h, wd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) containerTop(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.b.Containers.ContainerTop(r.Context(), r.PathValue("name"), r.FormValue("ps_args"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) containerStats(w http.ResponseWriter, r *http.Request) error {
	opts := StatsOptions{Stream: boolValueOr(r, "stream", true)}
	opts.OneShot = !opts.Stream && boolValue(r, "one-shot")
	var enc *json.Encoder
	opts.Send = func(st *container.StatsResponse) error {
		if enc == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			enc = json.NewEncoder(newFlushWriter(w))
		}
		return enc.Encode(st)
	}
	err := s.b.Containers.ContainerStats(r.Context(), r.PathValue("name"), opts)
	if err != nil && enc != nil {
		// The stream started; the client sees it end.
		return nil
	}
	return err
}

func (s *Server) containerRename(w http.ResponseWriter, r *http.Request) error {
	newName := r.FormValue("name")
	if newName == "" {
		return invalid("Neither old nor new names may be empty")
	}
	if err := s.b.Containers.ContainerRename(r.Context(), r.PathValue("name"), newName); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerPause(w http.ResponseWriter, r *http.Request) error {
	if err := s.b.Containers.ContainerPause(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerUnpause(w http.ResponseWriter, r *http.Request) error {
	if err := s.b.Containers.ContainerUnpause(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerUpdate(w http.ResponseWriter, r *http.Request) error {
	var cfg container.UpdateConfig
	if _, err := readJSON(w, r, &cfg, false); err != nil {
		return err
	}
	resp, err := s.b.Containers.ContainerUpdate(r.Context(), r.PathValue("name"), cfg)
	if err != nil {
		return err
	}
	if resp.Warnings == nil {
		resp.Warnings = []string{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) containerPrune(w http.ResponseWriter, r *http.Request) error {
	f, err := filtersOf(r)
	if err != nil {
		return err
	}
	if err := f.Validate("label", "label!", "until"); err != nil {
		return err
	}
	rep, err := s.b.Containers.ContainerPrune(r.Context(), f)
	if err != nil {
		return err
	}
	if rep.ContainersDeleted == nil {
		rep.ContainersDeleted = []string{}
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) containerExport(w http.ResponseWriter, r *http.Request) error {
	lw := &lazyWriter{start: func() io.Writer {
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
		return w
	}}
	return s.b.Containers.ContainerExport(r.Context(), r.PathValue("name"), lw)
}

func (s *Server) containerChanges(w http.ResponseWriter, r *http.Request) error {
	changes, err := s.b.Containers.ContainerChanges(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if changes == nil {
		changes = []container.FilesystemChange{}
	}
	writeJSON(w, http.StatusOK, changes)
	return nil
}

// pathStatHeader carries a PathStat as base64 JSON, as dockerd sends it.
const pathStatHeader = "X-Docker-Container-Path-Stat"

func setPathStat(w http.ResponseWriter, st container.PathStat) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	w.Header().Set(pathStatHeader, base64.StdEncoding.EncodeToString(b))
	return nil
}

func archivePath(r *http.Request) (string, error) {
	p := r.FormValue("path")
	if p == "" {
		return "", invalid("path is required")
	}
	return p, nil
}

func (s *Server) containerArchiveHead(w http.ResponseWriter, r *http.Request) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	st, err := s.b.Containers.ContainerStatPath(r.Context(), r.PathValue("name"), p)
	if err != nil {
		return err
	}
	if err := setPathStat(w, st); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) containerArchiveGet(w http.ResponseWriter, r *http.Request) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	rc, st, err := s.b.Containers.ContainerArchivePath(r.Context(), r.PathValue("name"), p)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := setPathStat(w, st); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, rc)
	return err
}

func (s *Server) containerArchivePut(w http.ResponseWriter, r *http.Request) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	opts := ExtractOptions{NoOverwriteDirNonDir: boolValue(r, "noOverwriteDirNonDir"), CopyUIDGID: boolValue(r, "copyUIDGID")}
	if err := s.b.Containers.ContainerExtractToDir(r.Context(), r.PathValue("name"), p, opts, r.Body); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
