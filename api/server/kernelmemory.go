package server

import (
	"encoding/json"
)

// UnmarshalJSON decodes a create request and notes the KernelMemory that
// older clients still send: the API types no longer carry it, and it is
// discarded with dockerd's warning rather than silently.
func (c *createRequest) UnmarshalJSON(b []byte) error {
	type plain createRequest
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	var legacy struct {
		HostConfig *struct{ KernelMemory int64 }
	}
	if json.Unmarshal(b, &legacy) == nil && legacy.HostConfig != nil {
		c.kernelMemory = legacy.HostConfig.KernelMemory
	}
	return nil
}

// kernelMemoryWarning is dockerd's warning for a kernel memory limit,
// saying also that berthd does not apply it.
func kernelMemoryWarning() string {
	return "Specifying a kernel memory limit is deprecated and will be removed in a future release. Kernel memory limit discarded."
}
