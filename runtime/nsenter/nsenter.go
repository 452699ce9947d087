// Package nsenter is the part of a container's first process that must run
// before the Go runtime starts threads: joining and creating namespaces.
// Importing it installs a C constructor that is inert unless the runtime
// started this binary as a container process (see nsenter.c).
package nsenter

/*
#cgo CFLAGS: -Wall -O2
#include "nsenter.h"
*/
import "C"

// Message types on the init socket, shared with nsenter.c.
const (
	MsgBootstrap = C.BERTH_MSG_BOOTSTRAP
	MsgMapReq    = C.BERTH_MSG_MAPREQ
	MsgMapAck    = C.BERTH_MSG_MAPACK
	MsgPid       = C.BERTH_MSG_PID
	MsgError     = C.BERTH_MSG_ERROR
)

// Bootstrap attribute types, shared with nsenter.c.
const (
	AttrCloneFlags  = C.BERTH_ATTR_CLONEFLAGS
	AttrNSJoin      = C.BERTH_ATTR_NSJOIN
	AttrTimeOffsets = C.BERTH_ATTR_TIMEOFFSETS
)

// EnvInitPipe names the environment variable that carries the init socket's
// file descriptor number into a container process.
const EnvInitPipe = "_BERTH_INITPIPE"

// IsContainerProcess reports whether the constructor has bootstrapped this
// process as a container's process.
func IsContainerProcess() bool { return C.berth_stage == 1 }
