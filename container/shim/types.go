package shim

import (
	"errors"
	"time"

	"github.com/berth-dev/berth/container/logs"
)

// Files in a shim's state directory.
const (
	ConfigFile = "shim.json"   // written by the daemon before the shim starts
	SocketFile = "shim.sock"   // the control socket, present while the shim runs
	ExitFile   = "exit.json"   // the container's exit, written before the shim exits
	LogFile    = "shim.log"    // the shim's own diagnostics
	RuntimeLog = "runtime.log" // berth-runtime's --log (JSON lines)
)

// Log drivers the shim implements.
const (
	LogDriverJSONFile = "json-file"
	LogDriverNone     = "none"
)

// Config is shim.json: everything the shim needs to run one container.
type Config struct {
	ID          string       `json:"id"`
	Bundle      string       `json:"bundle"`
	Runtime     string       `json:"runtime"`                // berth-runtime (or any runc-compatible) executable
	RuntimeRoot string       `json:"runtime_root,omitempty"` // the runtime's --root
	LogDriver   string       `json:"log_driver,omitempty"`   // "json-file" (default) or "none"
	LogPath     string       `json:"log_path,omitempty"`     // the json-file log; required for json-file
	LogOptions  logs.Options `json:"log_options,omitempty"`
	Tty         bool         `json:"tty,omitempty"`        // the bundle's process.terminal
	OpenStdin   bool         `json:"open_stdin,omitempty"` // give the container a stdin pipe
	StdinOnce   bool         `json:"stdin_once,omitempty"` // close it when the first stdin attacher leaves
	// DeferCreate: the shim creates the container only when told to
	// start it, with one `runtime run --detach` instead of `create` then
	// `start` (one runtime process less per start). Ready then has no
	// Pid; the start's Response has it. Ignored with Tty (the pty master
	// must exist before clients attach).
	DeferCreate bool `json:"defer_create,omitempty"`
	// OwnPidNS: the container has a pid namespace of its own, so nothing
	// of it outlives its init and the runtime's delete can follow the
	// exit report instead of delaying it.
	OwnPidNS bool `json:"own_pid_ns,omitempty"`
	// Binary is the berth-shim executable client.Start launches; empty
	// means "berth-shim" next to the calling executable, then in $PATH.
	// Not read by the shim itself.
	Binary string `json:"binary,omitempty"`
}

// Operations of the control protocol.
const (
	OpStart  = "start"
	OpKill   = "kill"
	OpResize = "resize"
	OpExec   = "exec"
	OpWait   = "wait"
	OpState  = "state"
	OpAttach = "attach"
)

// Request is the one JSON line a connection starts with.
type Request struct {
	Op     string `json:"op"`
	ExecID string `json:"exec_id,omitempty"` // attach, resize, wait, exec: an exec'd process instead of the container's
	// kill
	Signal int  `json:"signal,omitempty"`
	All    bool `json:"all,omitempty"`
	// resize
	Height uint16 `json:"height,omitempty"`
	Width  uint16 `json:"width,omitempty"`
	// exec: the OCI process (runtime-spec Process) to run; its terminal
	// field must match Tty.
	Process RawJSON `json:"process,omitempty"`
	Tty     bool    `json:"tty,omitempty"`
	// attach and exec: which streams the connection carries. For exec,
	// Stdin also gives the process a stdin pipe (otherwise /dev/null).
	Stdin  bool `json:"stdin,omitempty"`
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`
}

// RawJSON is encoding/json's RawMessage, without importing encoding/json
// into the shim (its package initialisation alone links float
// formatting): JSON kept as it is, encoded as it is.
type RawJSON []byte

// MarshalJSON returns m, or null when m is nil.
func (m RawJSON) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	return m, nil
}

// UnmarshalJSON keeps a copy of data.
func (m *RawJSON) UnmarshalJSON(data []byte) error {
	if m == nil {
		return errors.New("shim.RawJSON: UnmarshalJSON on nil pointer")
	}
	*m = append((*m)[0:0], data...)
	return nil
}

// Response is the one JSON line the shim answers with. For attach, and
// for exec with streams, the stream follows it on the same connection.
type Response struct {
	Error string      `json:"error,omitempty"`
	Pid   int         `json:"pid,omitempty"`  // exec: the process's host pid
	Exit  *ExitStatus `json:"exit,omitempty"` // wait
	State *State      `json:"state,omitempty"`
}

// ExitStatus is how a process ended; for the container it is also
// exit.json.
type ExitStatus struct {
	// ExitCode is the process's exit code, or 128+signal when a signal
	// killed it, as Docker reports it.
	ExitCode   int       `json:"exit_code"`
	OOMKilled  bool      `json:"oom_killed,omitempty"`
	Pid        int       `json:"pid,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at"`
}

// Container statuses in State.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusStopped = "stopped"
)

// State describes the container as the shim sees it.
type State struct {
	ID        string      `json:"id"`
	Pid       int         `json:"pid"`      // the container's init, in the host pid namespace
	ShimPid   int         `json:"shim_pid"` //
	Status    string      `json:"status"`
	StartedAt time.Time   `json:"started_at,omitzero"`
	Exit      *ExitStatus `json:"exit,omitempty"` // once stopped
	Execs     []ExecState `json:"execs,omitempty"`
}

// ExecState is one process started with exec.
type ExecState struct {
	ID      string      `json:"id"`
	Pid     int         `json:"pid"`
	Running bool        `json:"running"`
	Exit    *ExitStatus `json:"exit,omitempty"`
}

// Ready is what the shim writes to the daemon over the pipe it inherits
// as fd 3 once `runtime create` is done: the container's pid, or the
// runtime's error.
type Ready struct {
	Pid     int    `json:"pid,omitempty"`
	ShimPid int    `json:"shim_pid,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Stream ids in the frames of a non-TTY attach stream (Docker's stdcopy).
const (
	StreamStdin  = 0
	StreamStdout = 1
	StreamStderr = 2
)
