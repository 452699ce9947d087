// Package shim is berth-shim, the small process that stays with one
// container for its whole life: it runs `berth-runtime create` and, when
// told, `start`; it holds the container's stdio, writes its log, relays
// attached clients, runs `exec`s, reaps, and records the exit. It outlives
// berthd, which reconnects to it after a restart. Package client is the
// daemon's side.
//
// # Life
//
// The daemon writes ConfigFile (shim.json) into the container's state
// directory and starts `berth-shim DIR` in a new session (stdio
// /dev/null) with a pipe as fd 3. The daemon reaps it if it ends first;
// after a daemon restart it is reparented to init (or the nearest
// subreaper). The shim makes itself a child subreaper (exec'd processes
// and the container's init, forked by the runtime, become its children),
// listens on SocketFile, runs `runtime create` with the container's stdio
// (pipes, or with a TTY a pty whose master arrives over --console-socket)
// and writes a Ready line to fd 3: the container's pid, or the text of the
// runtime's error from its JSON --log. Output read from the container goes
// to the log and to attached clients from then on, so a client attached
// between create and start sees everything.
//
// With DeferCreate (berthd's choice for containers without a TTY, which
// it starts right after launching the shim) the shim only makes the
// stdio pipes before its Ready line (no Pid in it) and creates and starts
// the container on `start` with one `runtime run --detach`: a runtime
// process less per start. The init, forked by the runtime, is reparented
// to the shim. A failed run fails the start; the shim then records an
// exit (code 128) and goes, as it does when killed before the start.
//
// When the container's init exits the shim reads the OOM-kill counter of
// its memory cgroup (cgroup v1 memory.oom_control or v2 memory.events),
// runs `runtime delete --force`, waits (at most two seconds) for the
// output pipes to drain, closes the log, writes ExitFile atomically
// (temp file, rename), answers every waiter and exits. With OwnPidNS
// (nothing of the container outlives its init) the delete runs last,
// after the waiters have their answer. A daemon
// that finds the socket gone reads ExitFile instead.
//
// # Control protocol
//
// Each connection to SocketFile carries one request: a JSON Request line
// from the client, a JSON Response line from the shim. Ops:
//
//	start   runtime start (DeferCreate: runtime run --detach); {pid} or {error}
//	kill    {signal, all}: runtime kill
//	resize  {height, width, exec_id?}: TIOCSWINSZ on the pty
//	exec    {exec_id, process, tty, stdin, stdout, stderr}: runtime exec
//	        --detach with pipes or a console socket; {pid}
//	wait    {exec_id?}: blocks until the process has exited and its
//	        output is drained; {exit: {exit_code, oom_killed, finished_at}}
//	state   {state: {...}}
//	attach  {exec_id?, stdin, stdout, stderr}
//
// After the Response of attach, or of exec with any stream selected, the
// connection carries the process's stdio. Shim to client: without a TTY,
// Docker's stdcopy frames (a header of 8 bytes: the stream, 1 for stdout
// or 2 for stderr, three zero bytes, the payload length as big-endian
// uint32, then the payload); with a TTY, the raw bytes. Client to shim:
// stdin bytes; a half-close (shutdown SHUT_WR) is stdin's end. The shim
// closes the connection when the process's output has ended. So a daemon
// can splice the connection straight onto a hijacked HTTP connection.
//
// Several clients may be attached at once; each gets all output from the
// moment it attached. With StdinOnce (Docker's `run -i`), the container's
// stdin is closed when the first client attached with stdin sends EOF or
// goes away; an exec's stdin always closes so, as in Docker. With a TTY
// there is no stdin to close: EOF from a client just ends its input.
//
// # Back-pressure
//
// The shim never lets a client slow the container: each attached client
// has its own buffer of up to AttachBuffer bytes; a client that falls
// further behind is disconnected (its connection closed) and the event is
// written to LogFile. The complete output is still in the log. The log is
// written synchronously by the goroutine reading the container's pipe, so
// only the disk can slow a container that floods its output.
//
// # Size
//
// The shim runs once per container, so it links only the standard library,
// golang.org/x/sys and package logs (no net, no HTTP, no image code), and
// in the executable no encoding/json, fmt, bufio or reflection (tests
// enforce both): its few messages are encoded and parsed by hand in
// wire.go, in the JSON encoding/json writes and reads for types.go, which
// the daemon's side uses unchanged. It builds static without cgo, runs
// with GOMAXPROCS=1 from its start (the daemon puts it in the shim's
// environment: a Go runtime started with a P per CPU keeps their caches
// and spans resident; a pump yields after handing output to clients, so
// their writers keep up) and GOGC=25 (collections start at a 1 MB heap
// instead of 4 MB, which a shim answering requests would otherwise keep).
// After start-up, and after a second without requests, it drops its
// mappings of the executable (trimText).
//
// Measured here (kernel 6.18, ext4 with large folios: a touched page of
// the executable maps its whole folio), quiet running container: RSS
// 2.1-2.3 MB (0.86-1.05 MB anonymous, 1.2-1.3 MB pages of the executable
// shared by every shim), PSS 1.2-1.35 MB with four shims; before the
// diet 3.1-3.3 MB and 1.5-1.7 MB. The floor, a static Go program that
// only blocks in read(2), is 1.77 MB RSS (0.58 MB anonymous) here.
// After 3000 state requests and 20 execs a shim holds about 4.6 MB (7.5
// MB before), mostly heap and the stacks of threads the runtime made for
// blocking system calls.
package shim
