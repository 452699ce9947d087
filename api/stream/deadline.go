package stream

import "time"

// noDeadline clears a connection's deadlines.
var noDeadline time.Time
