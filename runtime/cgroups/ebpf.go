package cgroups

import (
	"encoding/binary"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A tiny eBPF assembler, just enough for the cgroup v2 device filter.
// (golang.org/x/net/bpf is classic BPF, which the kernel cannot attach to
// cgroups.) Encoding: struct bpf_insn { u8 code; u8 dst:4, src:4; s16 off;
// s32 imm; }, little endian on every architecture we build for.

type insn struct {
	code     uint8
	dst, src uint8
	off      int16
	imm      int32
}

const (
	// instruction classes
	clsLDX   = 0x01
	clsALU   = 0x04 // 32-bit
	clsJMP   = 0x05
	clsALU64 = 0x07
	// sizes / modes
	szW    = 0x00
	modMEM = 0x60
	// ALU ops
	aluAND = 0x50
	aluRSH = 0x70
	aluMOV = 0xb0
	// jump ops
	jmpJA   = 0x00
	jmpJEQ  = 0x10
	jmpJNE  = 0x50
	jmpEXIT = 0x90
	// source
	srcK = 0x00
	srcX = 0x08
)

// Registers used by the device program.
const (
	r0 = iota // return value
	r1        // context on entry, scratch later
	r2        // device type (BPF_DEVCG_DEV_*)
	r3        // requested access (BPF_DEVCG_ACC_*)
	r4        // major
	r5        // minor
)

func ldxW(dst, src uint8, off int16) insn {
	return insn{code: clsLDX | szW | modMEM, dst: dst, src: src, off: off}
}
func and32(dst uint8, imm int32) insn { return insn{code: clsALU | aluAND | srcK, dst: dst, imm: imm} }
func rsh32(dst uint8, imm int32) insn { return insn{code: clsALU | aluRSH | srcK, dst: dst, imm: imm} }
func mov64(dst, src uint8) insn       { return insn{code: clsALU64 | aluMOV | srcX, dst: dst, src: src} }
func movImm(dst uint8, imm int32) insn {
	return insn{code: clsALU64 | aluMOV | srcK, dst: dst, imm: imm}
}
func jneImm(dst uint8, imm int32, off int16) insn {
	return insn{code: clsJMP | jmpJNE | srcK, dst: dst, imm: imm, off: off}
}
func jeqImm(dst uint8, imm int32, off int16) insn {
	return insn{code: clsJMP | jmpJEQ | srcK, dst: dst, imm: imm, off: off}
}
func jneReg(dst, src uint8, off int16) insn {
	return insn{code: clsJMP | jmpJNE | srcX, dst: dst, src: src, off: off}
}
func exit() insn { return insn{code: clsJMP | jmpEXIT} }

// encode serialises instructions for bpf(BPF_PROG_LOAD).
func encode(prog []insn) []byte {
	b := make([]byte, 8*len(prog))
	for i, in := range prog {
		o := b[8*i:]
		o[0] = in.code
		o[1] = in.dst&0xf | in.src<<4
		binary.LittleEndian.PutUint16(o[2:], uint16(in.off))
		binary.LittleEndian.PutUint32(o[4:], uint32(in.imm))
	}
	return b
}

// Values from include/uapi/linux/bpf.h (struct bpf_cgroup_dev_ctx).
const (
	devcgDevBlock = 1
	devcgDevChar  = 2
	devcgAccMknod = 1
	devcgAccRead  = 2
	devcgAccWrite = 4
)

// deviceFilter compiles OCI device rules into a BPF_PROG_TYPE_CGROUP_DEVICE
// program. OCI rules are ordered and the last matching rule wins, with
// everything denied when no rule matches; the program therefore tests the
// rules in reverse order and returns at the first match. A full wildcard
// rule ("a *:* rwm") makes every earlier rule irrelevant, so emission stops
// there.
//
// Matching of the requested access (open(2) may ask for read|write at once):
// an allow rule matches when it grants every requested bit, a deny rule
// matches when it denies any requested bit. This is the v1 kernel's meaning
// for a list that starts from deny-all.
//
// The context is struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
// u32 minor; } with access_type = (access << 16) | type. Return 1 = allow.
func deviceFilter(rules []specs.LinuxDeviceCgroup) ([]insn, error) {
	prog := []insn{
		ldxW(r2, r1, 0),
		and32(r2, 0xffff),
		ldxW(r3, r1, 0),
		rsh32(r3, 16),
		ldxW(r4, r1, 4),
		ldxW(r5, r1, 8),
	}
	terminated := false
	for i := len(rules) - 1; i >= 0 && !terminated; i-- {
		block, final, err := ruleBlock(rules[i])
		if err != nil {
			return nil, fmt.Errorf("devices: rule %d: %w", i, err)
		}
		prog = append(prog, block...)
		terminated = final
	}
	if !terminated {
		prog = append(prog, movImm(r0, 0), exit())
	}
	return prog, nil
}

// ruleBlock emits one rule: conditional jumps to the end of the block when
// the rule does not match, then "return allow/deny". final reports an
// unconditional block.
func ruleBlock(d specs.LinuxDeviceCgroup) (block []insn, final bool, err error) {
	acc, err := normAccess(d.Access)
	if err != nil {
		return nil, false, err
	}
	var devType int32
	switch d.Type {
	case "", "a":
	case "b":
		devType = devcgDevBlock
	case "c", "u":
		devType = devcgDevChar
	case "p":
		return nil, false, nil // FIFOs are not device-controlled
	default:
		return nil, false, fmt.Errorf("unknown device type %q", d.Type)
	}
	var accBits int32
	for _, c := range acc {
		switch c {
		case 'r':
			accBits |= devcgAccRead
		case 'w':
			accBits |= devcgAccWrite
		case 'm':
			accBits |= devcgAccMknod
		}
	}
	const next = -1 // placeholder: jump to the end of this block
	if devType != 0 {
		block = append(block, jneImm(r2, devType, next))
	}
	if accBits != devcgAccRead|devcgAccWrite|devcgAccMknod {
		block = append(block, mov64(r1, r3), and32(r1, accBits))
		if d.Allow {
			// every requested bit must be granted: (req & acc) == req
			block = append(block, jneReg(r1, r3, next))
		} else {
			// any requested bit denied: (req & acc) != 0
			block = append(block, jeqImm(r1, 0, next))
		}
	}
	if d.Major != nil && *d.Major >= 0 {
		block = append(block, jneImm(r4, int32(*d.Major), next))
	}
	if d.Minor != nil && *d.Minor >= 0 {
		block = append(block, jneImm(r5, int32(*d.Minor), next))
	}
	final = len(block) == 0
	ret := int32(0)
	if d.Allow {
		ret = 1
	}
	block = append(block, movImm(r0, ret), exit())
	for i := range block {
		if block[i].code&0x07 == clsJMP && block[i].code != clsJMP|jmpEXIT && block[i].off == next {
			block[i].off = int16(len(block) - i - 1)
		}
	}
	return block, final, nil
}
