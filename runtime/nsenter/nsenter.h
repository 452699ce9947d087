#ifndef BERTH_NSENTER_H
#define BERTH_NSENTER_H

// Messages on the init socket: u32 type, u32 length, then the payload.
enum {
	BERTH_MSG_BOOTSTRAP = 1, // runtime -> nsenter: attributes below
	BERTH_MSG_MAPREQ = 2,    // nsenter -> runtime: write my uid/gid maps
	BERTH_MSG_MAPACK = 3,    // runtime -> nsenter: maps written
	BERTH_MSG_PID = 4,       // nsenter -> runtime: i32 pid of the container process
	BERTH_MSG_ERROR = 5,     // either way: a text error
};

enum {
	BERTH_ATTR_CLONEFLAGS = 1,  // u32
	BERTH_ATTR_NSJOIN = 2,      // u32 CLONE_NEW* type, then a NUL-terminated path
	BERTH_ATTR_TIMEOFFSETS = 3, // text for /proc/self/timens_offsets
};

extern int berth_stage;
void berth_nsenter(void) __attribute__((constructor));

#endif
