package sockredirect

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Stack layout of connect6.
const (
	s6Key         = -24 // services6 key: addr 16, port 2, proto 1, pad 1
	s6Key4        = -32 // services key of a v4-mapped destination
	s6Local       = -48 // locals6 / locals key
	s6Cookie      = -56
	s6Origin      = -96        // origins6 value: dialled addr 16, port 4, backend addr 16, port 4
	s6Sockaddr    = -128       // bpf_bind's sockaddr_in6 (28 bytes)
	loopback6Word = 0x01000000 // the last word of ::1 as a little-endian word
	v4Mapped      = -65536     // 0x0000ffff in network order, as a little-endian word (0xffff0000)
)

// connect6 is connect4 for IPv6 sockets: an IPv6 destination is looked
// up in services6 (exact, then the wildcard :: when it is a local
// address, ::1 included), a v4-mapped one (::ffff:a.b.c.d, a dual-stack
// socket dialling IPv4) in the IPv4 services and rewritten to the
// v4-mapped backend.
func connect6(hostCookie uint64, services, locals, services6, locals6, origins6 *ebpf.Map) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetNetnsCookie.Call(),
		asm.LoadImm(asm.R1, int64(hostCookie), asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R1, "pass"),
		asm.LoadMem(asm.R2, asm.R6, ctxProtocol, asm.Word),
		asm.JNE.Imm(asm.R2, ipprotoTCP, "pass"),
		asm.StoreMem(asm.RFP, s6Key+18, asm.R2, asm.Byte),
		asm.StoreImm(asm.RFP, s6Key+19, 0, asm.Byte),
		asm.LoadMem(asm.R2, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, s6Key+16, asm.R2, asm.Half),
	}
	insns = append(insns, copyWords(asm.RFP, s6Key, asm.R6, ctxUserIP6, 4)...)
	insns = append(insns,
		// ::ffff:a.b.c.d?
		asm.LoadMem(asm.R2, asm.RFP, s6Key, asm.Word),
		asm.JNE.Imm(asm.R2, 0, "v6"),
		asm.LoadMem(asm.R2, asm.RFP, s6Key+4, asm.Word),
		asm.JNE.Imm(asm.R2, 0, "v6"),
		asm.LoadMem(asm.R2, asm.RFP, s6Key+8, asm.Word),
		asm.JNE.Imm32(asm.R2, v4Mapped, "v6"),
		asm.LoadMem(asm.R7, asm.RFP, s6Key+12, asm.Word),
		asm.StoreMem(asm.RFP, s6Key4, asm.R7, asm.Word),
		asm.LoadMem(asm.R2, asm.RFP, s6Key+16, asm.Half),
		asm.StoreMem(asm.RFP, s6Key4+4, asm.R2, asm.Half),
		asm.StoreImm(asm.RFP, s6Key4+6, ipprotoTCP, asm.Byte),
		asm.StoreImm(asm.RFP, s6Key4+7, 0, asm.Byte),
	)
	insns = append(insns, lookup(services, s6Key4)...)
	insns = append(insns,
		asm.JNE.Imm(asm.R0, 0, "found4"),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.And.Imm(asm.R1, 0xff),
		asm.JEq.Imm(asm.R1, loopbackNet, "wildcard4"),
		asm.StoreMem(asm.RFP, s6Local, asm.R7, asm.Word),
	)
	insns = append(insns, lookup(locals, s6Local)...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.StoreImm(asm.RFP, s6Key4, 0, asm.Word).WithSymbol("wildcard4"),
	)
	insns = append(insns, lookup(services, s6Key4)...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.StoreImm(asm.RFP, s6Origin+20, 0, asm.Word).WithSymbol("found4"),
		asm.StoreImm(asm.RFP, s6Origin+24, 0, asm.Word),
		asm.StoreImm(asm.RFP, s6Origin+28, v4Mapped, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.RFP, s6Origin+32, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 4, asm.Half),
		asm.StoreMem(asm.RFP, s6Origin+36, asm.R2, asm.Word),
		asm.Ja.Label("rewrite"),
	)
	// IPv6: exact entry, else the wildcard for a local destination.
	v6 := lookup(services6, s6Key)
	v6[0] = v6[0].WithSymbol("v6")
	insns = append(insns, v6...)
	insns = append(insns, asm.JNE.Imm(asm.R0, 0, "found6"))
	insns = append(insns, copyWords(asm.RFP, s6Local, asm.RFP, s6Key, 4)...)
	insns = append(insns, lookup(locals6, s6Local)...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.StoreImm(asm.RFP, s6Key, 0, asm.Word),
		asm.StoreImm(asm.RFP, s6Key+4, 0, asm.Word),
		asm.StoreImm(asm.RFP, s6Key+8, 0, asm.Word),
		asm.StoreImm(asm.RFP, s6Key+12, 0, asm.Word),
	)
	insns = append(insns, lookup(services6, s6Key)...)
	insns = append(insns, asm.JEq.Imm(asm.R0, 0, "pass"))
	found6 := copyWords(asm.RFP, s6Origin+20, asm.R0, 0, 4)
	found6[0] = found6[0].WithSymbol("found6")
	insns = append(insns, found6...)
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R0, 16, asm.Half),
		asm.StoreMem(asm.RFP, s6Origin+36, asm.R2, asm.Word),
	)
	// origin = dialled + backend; then the rewrite.
	rewrite := copyWords(asm.RFP, s6Origin, asm.R6, ctxUserIP6, 4)
	rewrite[0] = rewrite[0].WithSymbol("rewrite")
	insns = append(insns, rewrite...)
	// Bound to the IPv6 address dialled, as connect4 does, unless it is
	// ::1, link-local (it would need its interface) or v4-mapped.
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.RFP, s6Origin, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R2),
		asm.And.Imm(asm.R1, 0xc0ff),
		asm.JEq.Imm(asm.R1, 0x80fe, "bound6"), // fe80::/10
		asm.JNE.Imm(asm.R2, 0, "bind6"),
		asm.LoadMem(asm.R2, asm.RFP, s6Origin+4, asm.Word),
		asm.JNE.Imm(asm.R2, 0, "bind6"),
		asm.LoadMem(asm.R2, asm.RFP, s6Origin+8, asm.Word),
		asm.JEq.Imm32(asm.R2, v4Mapped, "bound6"),
		asm.JNE.Imm(asm.R2, 0, "bind6"),
		asm.LoadMem(asm.R2, asm.RFP, s6Origin+12, asm.Word),
		asm.JEq.Imm(asm.R2, loopback6Word, "bound6"),
		// sockaddr_in6{AF_INET6, port 0, flowinfo 0, dialled, scope 0}
		asm.StoreImm(asm.RFP, s6Sockaddr, afInet6, asm.Half).WithSymbol("bind6"),
		asm.StoreImm(asm.RFP, s6Sockaddr+2, 0, asm.Half),
		asm.StoreImm(asm.RFP, s6Sockaddr+4, 0, asm.Word),
	)
	insns = append(insns, copyWords(asm.RFP, s6Sockaddr+8, asm.RFP, s6Origin, 4)...)
	insns = append(insns,
		asm.StoreImm(asm.RFP, s6Sockaddr+24, 0, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, s6Sockaddr),
		asm.Mov.Imm(asm.R3, 28),
		asm.FnBind.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("bound6"),
	)
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, s6Origin+16, asm.R2, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, s6Cookie, asm.R0, asm.DWord),
		loadMap(asm.R1, origins6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, s6Cookie),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, s6Origin),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnMapUpdateElem.Call(),
	)
	insns = append(insns, copyWords(asm.R6, ctxUserIP6, asm.RFP, s6Origin+20, 4)...)
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.RFP, s6Origin+36, asm.Word),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R0, sockAddrPass).WithSymbol("pass"),
		asm.Return(),
	)
	return insns
}

// getpeername6 is getpeername4 for IPv6 sockets.
func getpeername6(origins6 *ebpf.Map) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stackCookie, asm.R0, asm.DWord),
	}
	insns = append(insns, lookup(origins6, stackCookie)...)
	insns = append(insns, asm.JEq.Imm(asm.R0, 0, "pass"))
	for i := int16(0); i < 4; i++ {
		insns = append(insns,
			asm.LoadMem(asm.R1, asm.R6, ctxUserIP6+4*i, asm.Word),
			asm.LoadMem(asm.R2, asm.R0, 20+4*i, asm.Word),
			asm.JNE.Reg(asm.R1, asm.R2, "pass"),
		)
	}
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.R6, ctxUserPort, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 36, asm.Word),
		asm.JNE.Reg(asm.R1, asm.R2, "pass"),
	)
	insns = append(insns, copyWords(asm.R6, ctxUserIP6, asm.R0, 0, 4)...)
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.R0, 16, asm.Word),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R1, asm.Word),
		asm.Mov.Imm(asm.R0, sockAddrPass).WithSymbol("pass"),
		asm.Return(),
	)
	return insns
}
