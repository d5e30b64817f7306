package capture

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// Filter is a compiled capture filter: a classic BPF program for Ethernet
// frames that the kernel runs on every packet, so that unwanted packets
// never reach user space.
type Filter struct {
	// Expr is the expression it was compiled from ("" matches everything).
	Expr string
	// Program is the BPF program.
	Program []bpf.Instruction
	// DedupLoopback: the program drops the outgoing copy of packets on lo.
	DedupLoopback bool
}

// ErrFilter is wrapped by every error in a filter expression.
var ErrFilter = errors.New("bad filter")

// Snap is the number of bytes the filter accepts of each packet: all.
const Snap = 262144

// CompileFilter compiles a filter expression. The language is the part of
// tcpdump's that this tool needs:
//
//	expr    = and { ("or" | "||") and }
//	and     = unary { ("and" | "&&") unary }
//	unary   = ("not" | "!") unary | "(" expr ")" | primitive
//	primitive = "tcp" | "udp" | "ip" | "ip6"
//	          | [ "tcp" | "udp" ] [ "src" | "dst" ] "port" NUMBER
//	          | [ "src" | "dst" ] "host" ADDRESS      (IPv4 or IPv6)
//
// Ports match TCP and UDP over IPv4 (first fragments) and IPv6 (without
// extension headers), as tcpdump's do. When dedupLoopback is set, the
// program also drops the outgoing copy of every packet on the loopback
// interface (ifindex 1 in every namespace), which the kernel delivers to
// packet sockets twice, so that counts match tcpdump's.
func CompileFilter(expr string, dedupLoopback bool) (*Filter, error) {
	toks := tokenize(expr)
	var root node = always{}
	if len(toks) > 0 {
		p := &parser{toks: toks}
		n, err := p.expr()
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrFilter, expr, err)
		}
		if p.pos < len(p.toks) {
			return nil, fmt.Errorf("%w %q: unexpected %q", ErrFilter, expr, p.toks[p.pos])
		}
		root = n
	}
	if dedupLoopback {
		outgoingOnLo := and{cmp{ext: bpf.ExtType, val: 4}, cmp{ext: bpf.ExtInterfaceIndex, val: 1}}
		root = and{not{outgoingOnLo}, root}
	}
	g := &gen{}
	accept, reject := g.label(), g.label()
	g.compile(root, accept, reject)
	g.place(accept)
	g.emit(bpf.RetConstant{Val: Snap})
	g.place(reject)
	g.emit(bpf.RetConstant{Val: 0})
	prog, err := g.resolve()
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrFilter, expr, err)
	}
	return &Filter{Expr: expr, Program: prog, DedupLoopback: dedupLoopback}, nil
}

// Match runs the program on a frame in user space (for tests and for
// captures the kernel cannot filter).
func (f *Filter) Match(frame []byte) bool {
	vm, err := bpf.NewVM(f.Program)
	if err != nil {
		return false
	}
	n, err := vm.Run(frame)
	return err == nil && n > 0
}

// Raw assembles the program for the kernel.
func (f *Filter) Raw() ([]bpf.RawInstruction, error) { return bpf.Assemble(f.Program) }

func tokenize(s string) []string {
	s = strings.NewReplacer("(", " ( ", ")", " ) ", "&&", " && ", "||", " || ").Replace(s)
	return strings.Fields(s)
}

// The syntax tree.
type node interface{}

type (
	and    struct{ a, b node }
	or     struct{ a, b node }
	not    struct{ a node }
	always struct{}
	// cmp loads a value and compares it: A == val, or A & val != 0 (set).
	cmp struct {
		size int    // 1, 2 or 4 bytes; 0 with ext
		off  uint32 // absolute offset, or relative to X when ind
		ind  bool   // load at X+off, X = IPv4 header length (set by msh)
		ext  bpf.Extension
		set  bool
		val  uint32
	}
)

type parser struct {
	toks []string
	pos  int
}

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *parser) next() string {
	t := p.peek()
	if t != "" {
		p.pos++
	}
	return t
}

func (p *parser) expr() (node, error) {
	n, err := p.and()
	for err == nil && (p.peek() == "or" || p.peek() == "||") {
		p.next()
		var m node
		if m, err = p.and(); err == nil {
			n = or{n, m}
		}
	}
	return n, err
}

func (p *parser) and() (node, error) {
	n, err := p.unary()
	for err == nil && (p.peek() == "and" || p.peek() == "&&") {
		p.next()
		var m node
		if m, err = p.unary(); err == nil {
			n = and{n, m}
		}
	}
	return n, err
}

func (p *parser) unary() (node, error) {
	switch t := p.next(); t {
	case "not", "!":
		n, err := p.unary()
		return not{n}, err
	case "(":
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, errors.New("missing )")
		}
		return n, nil
	case "":
		return nil, errors.New("expression ends early")
	default:
		p.pos--
		return p.primitive()
	}
}

var (
	isIPv4 = cmp{size: 2, off: 12, val: 0x0800}
	isIPv6 = cmp{size: 2, off: 12, val: 0x86dd}
)

func proto4(n uint32) node { return and{isIPv4, cmp{size: 1, off: 23, val: n}} }
func proto6(n uint32) node { return and{isIPv6, cmp{size: 1, off: 20, val: n}} }

func (p *parser) primitive() (node, error) {
	proto := ""
	if t := p.peek(); t == "tcp" || t == "udp" {
		proto = p.next()
	}
	dir := ""
	if t := p.peek(); t == "src" || t == "dst" {
		dir = p.next()
	}
	switch t := p.peek(); {
	case t == "port":
		p.next()
		v := p.next()
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port %q is not a number from 0 to 65535", v)
		}
		return portNode(proto, dir, uint32(n)), nil
	case t == "host":
		if proto != "" {
			return nil, fmt.Errorf("%s host: not supported, write %s and host ...", proto, proto)
		}
		p.next()
		v := p.next()
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("host %q is not an IP address", v)
		}
		return hostNode(dir, a), nil
	case proto != "" && dir == "":
		n := uint32(6)
		if proto == "udp" {
			n = 17
		}
		return or{proto4(n), proto6(n)}, nil
	case t == "ip" && proto == "" && dir == "":
		p.next()
		return isIPv4, nil
	case t == "ip6" && proto == "" && dir == "":
		p.next()
		return isIPv6, nil
	}
	if t := p.peek(); t != "" {
		return nil, fmt.Errorf("unknown word %q (want tcp, udp, ip, ip6, src, dst, host, port, and, or, not)", t)
	}
	return nil, errors.New("expression ends early")
}

func portNode(proto, dir string, port uint32) node {
	var l4v4, l4v6 node
	switch proto {
	case "tcp":
		l4v4, l4v6 = proto4(6), proto6(6)
	case "udp":
		l4v4, l4v6 = proto4(17), proto6(17)
	default:
		l4v4, l4v6 = or{proto4(6), proto4(17)}, or{proto6(6), proto6(17)}
	}
	src4, dst4 := cmp{size: 2, off: 14, ind: true, val: port}, cmp{size: 2, off: 16, ind: true, val: port}
	src6, dst6 := cmp{size: 2, off: 54, val: port}, cmp{size: 2, off: 56, val: port}
	var m4, m6 node
	switch dir {
	case "src":
		m4, m6 = src4, src6
	case "dst":
		m4, m6 = dst4, dst6
	default:
		m4, m6 = or{src4, dst4}, or{src6, dst6}
	}
	firstFragment := not{cmp{size: 2, off: 20, set: true, val: 0x1fff}}
	return or{and{l4v4, and{firstFragment, m4}}, and{l4v6, m6}}
}

func hostNode(dir string, a netip.Addr) node {
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		src, dst := cmp{size: 4, off: 26, val: v}, cmp{size: 4, off: 30, val: v}
		switch dir {
		case "src":
			return and{isIPv4, src}
		case "dst":
			return and{isIPv4, dst}
		}
		return and{isIPv4, or{src, dst}}
	}
	b := a.As16()
	words := func(base uint32) node {
		var n node = always{}
		for i := 0; i < 4; i++ {
			w := uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
			n = and{n, cmp{size: 4, off: base + uint32(4*i), val: w}}
		}
		return n
	}
	switch dir {
	case "src":
		return and{isIPv6, words(22)}
	case "dst":
		return and{isIPv6, words(38)}
	}
	return and{isIPv6, or{words(22), words(38)}}
}

// gen emits instructions with symbolic jump targets.
type gen struct {
	ins    []pseudo
	labels int
}

type pseudo struct {
	in    bpf.Instruction
	label int // >0: a label placed here (no instruction)
	// conditional jump to labels
	jump     bool
	cond     bpf.JumpTest
	val      uint32
	tl, fl   int
	always   bool // unconditional jump to tl
	isLabel  bool
	position int
}

func (g *gen) label() int              { g.labels++; return g.labels }
func (g *gen) place(l int)             { g.ins = append(g.ins, pseudo{isLabel: true, label: l}) }
func (g *gen) emit(in bpf.Instruction) { g.ins = append(g.ins, pseudo{in: in}) }

func (g *gen) compile(n node, t, f int) {
	switch n := n.(type) {
	case always:
		g.ins = append(g.ins, pseudo{always: true, tl: t})
	case and:
		mid := g.label()
		g.compile(n.a, mid, f)
		g.place(mid)
		g.compile(n.b, t, f)
	case or:
		mid := g.label()
		g.compile(n.a, t, mid)
		g.place(mid)
		g.compile(n.b, t, f)
	case not:
		g.compile(n.a, f, t)
	case cmp:
		switch {
		case n.ext != 0:
			g.emit(bpf.LoadExtension{Num: n.ext})
		case n.ind:
			g.emit(bpf.LoadMemShift{Off: 14})
			g.emit(bpf.LoadIndirect{Off: n.off, Size: n.size})
		default:
			g.emit(bpf.LoadAbsolute{Off: n.off, Size: n.size})
		}
		cond := bpf.JumpEqual
		if n.set {
			cond = bpf.JumpBitsSet
		}
		g.ins = append(g.ins, pseudo{jump: true, cond: cond, val: n.val, tl: t, fl: f})
	default:
		panic(fmt.Sprintf("capture: unknown filter node %T", n))
	}
}

func (g *gen) resolve() ([]bpf.Instruction, error) {
	pos := map[int]int{}
	n := 0
	for i := range g.ins {
		if g.ins[i].isLabel {
			pos[g.ins[i].label] = n
			continue
		}
		g.ins[i].position = n
		n++
	}
	var out []bpf.Instruction
	for _, p := range g.ins {
		switch {
		case p.isLabel:
		case p.always:
			out = append(out, bpf.Jump{Skip: uint32(pos[p.tl] - p.position - 1)})
		case p.jump:
			st, sf := pos[p.tl]-p.position-1, pos[p.fl]-p.position-1
			if st > 255 || sf > 255 {
				return nil, errors.New("expression too long for a BPF program")
			}
			out = append(out, bpf.JumpIf{Cond: p.cond, Val: p.val, SkipTrue: uint8(st), SkipFalse: uint8(sf)})
		default:
			out = append(out, p.in)
		}
	}
	if len(out) > 4096 { // BPF_MAXINSNS
		return nil, errors.New("expression too long for a BPF program")
	}
	return out, nil
}
