package openwrt_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/mapt-go/mapt/testenv"
)

// crossTarget is one architecture of `make cross` and how to run it.
type crossTarget struct {
	goarch  string
	qemu    string // "" runs natively
	machine elf.Machine
	order   binary.ByteOrder
	class   elf.Class
}

// crossTargets are the architectures the test builds and runs: big-endian
// MIPS, little-endian MIPS (the size budget's target) and arm64. `make
// cross` builds arm (v7) and amd64 as well; the test leaves them out to stay
// near a minute with a cold build cache on two cores (a cold build of
// ce-agent is ~50 s of CPU per architecture).
var crossTargets = []crossTarget{
	{"mips", "qemu-mips-static", elf.EM_MIPS, binary.BigEndian, elf.ELFCLASS32},
	{"mipsle", "qemu-mipsel-static", elf.EM_MIPS, binary.LittleEndian, elf.ELFCLASS32},
	{"arm64", "qemu-aarch64-static", elf.EM_AARCH64, binary.LittleEndian, elf.ELFCLASS64},
}

// The seed's CE 774 (ARCHITECTURE.md, Conventions and reference vectors):
// 192.0.2.59, PSID 20, ports 40960-43007.
var seedDerive = []string{"derive", "--json", "--rule", "2001:db8:ce::/51,192.0.2.0/24,13,a=0",
	"--prefix", "2001:db8:ce:774::/64", "--dmr", "64:ff9b::/96"}

// crossSh runs scripts/cross.sh from the module root with extra environment.
func crossSh(t *testing.T, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "scripts/cross.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCrossBuilds builds ce-agent for router architectures with
// scripts/cross.sh (what `make cross` runs), checks each binary is a static,
// stripped ELF for its CPU embedding the BPF object of its byte order, runs
// it under qemu-user and requires the same derive JSON on every
// architecture; cross.sh fails it when ce-agent for mipsle is over budget.
func TestCrossBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("cross builds for five architectures are not short")
	}
	var qemus, archs []string
	for _, c := range crossTargets {
		archs = append(archs, c.goarch)
		if c.goarch != runtime.GOARCH {
			qemus = append(qemus, c.qemu)
		}
	}
	testenv.Require(t, qemus...)

	out := t.TempDir()
	table, err := crossSh(t, "OUT="+out, "BINS=ce-agent", "ARCHS="+strings.Join(archs, " "))
	if err != nil {
		t.Fatalf("scripts/cross.sh: %v\n%s", err, table)
	}
	t.Logf("scripts/cross.sh:\n%s", table)

	var want []byte // derive JSON of the first architecture
	for _, c := range crossTargets {
		t.Run(c.goarch, func(t *testing.T) {
			bin := filepath.Join(out, c.goarch, "ce-agent")
			checkELF(t, bin, c)
			checkBPF(t, bin, c)
			run := func(args ...string) []byte {
				t.Helper()
				argv := append([]string{bin}, args...)
				if c.goarch != runtime.GOARCH {
					argv = append([]string{c.qemu}, argv...)
				}
				var stderr bytes.Buffer
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Stderr = &stderr
				b, err := cmd.Output()
				if err != nil {
					t.Fatalf("%q: %v (stderr %q)", argv, err, stderr.String())
				}
				return b
			}
			if v := string(run("version")); !strings.HasPrefix(v, "ce-agent ") || !strings.Contains(v, "(linux/"+c.goarch+", go") {
				t.Errorf("version %q, want ce-agent ... (linux/%s, go...)", v, c.goarch)
			}
			got := run(seedDerive...)
			checkSeedJSON(t, got)
			if want == nil {
				want = got
			} else if !bytes.Equal(got, want) {
				t.Errorf("derive JSON differs from %s:\n got %s\nwant %s", crossTargets[0].goarch, got, want)
			}
		})
	}

	st, err := os.Stat(filepath.Join(out, "mipsle", "ce-agent"))
	if err != nil {
		t.Fatal(err)
	}
	// The first run held the budget (BUDGET in scripts/cross.sh, the one
	// place it is set); the script must also refuse a binary over it.
	msg, err := crossSh(t, "OUT="+out, "BINS=ce-agent", "ARCHS=mipsle", "BUDGET="+strconv.FormatInt(st.Size()-1, 10))
	if err == nil || !strings.Contains(msg, "over the budget of "+strconv.FormatInt(st.Size()-1, 10)+" bytes") {
		t.Errorf("cross.sh with a budget 1 byte too small: err %v, output %q; want a budget failure", err, msg)
	}
}

// checkBPF requires the agent's translator object for the target's byte
// order embedded in the binary (bpf2go picks it by build tag), never the
// other one, and requires that object to parse as a collection spec of that
// byte order with programs in it.
func checkBPF(t *testing.T, bin string, c crossTarget) {
	t.Helper()
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	right, wrong := "ce_bpfel.o", "ce_bpfeb.o"
	if c.order == binary.BigEndian {
		right, wrong = wrong, right
	}
	obj := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "dataplane", name))
		if err != nil {
			t.Fatalf("the translator object: %v", err)
		}
		return b
	}
	if bytes.Contains(exe, obj(wrong)) {
		t.Errorf("embeds dataplane/%s: wrong byte order for %s", wrong, c.goarch)
	}
	o := obj(right)
	if !bytes.Contains(exe, o) {
		t.Fatalf("does not embed dataplane/%s", right)
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(o))
	if err != nil {
		t.Fatalf("dataplane/%s: %v", right, err)
	}
	if spec.ByteOrder != c.order || len(spec.Programs) == 0 {
		t.Errorf("dataplane/%s: byte order %v with %d programs, want %v with some", right, spec.ByteOrder, len(spec.Programs), c.order)
	}
}

// checkELF requires a static, stripped executable for the target's CPU.
func checkELF(t *testing.T, path string, c crossTarget) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != c.machine || f.ByteOrder != c.order || f.Class != c.class || f.Type != elf.ET_EXEC {
		t.Errorf("ELF %v %v %v %v, want %v %v %v ET_EXEC", f.Machine, f.ByteOrder, f.Class, f.Type, c.machine, c.order, c.class)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("has %v: not static (CGO must be off)", p.Type)
		}
	}
	for _, s := range []string{".symtab", ".debug_info", ".zdebug_info"} {
		if f.Section(s) != nil {
			t.Errorf("has section %s: not stripped (-s -w)", s)
		}
	}
	if c.machine == elf.EM_MIPS {
		// Most router SoCs have no FPU: the fp_abi byte of .MIPS.abiflags
		// must say soft float (3, Val_GNU_MIPS_ABI_FP_SOFT), not GOMIPS's
		// hardfloat default.
		sec := f.Section(".MIPS.abiflags")
		if sec == nil {
			t.Fatal("no .MIPS.abiflags section")
		}
		b, err := sec.Data()
		if err != nil || len(b) < 8 {
			t.Fatalf(".MIPS.abiflags: %v (%d bytes)", err, len(b))
		}
		if b[7] != 3 {
			t.Errorf("MIPS fp_abi %d, want 3 (soft float)", b[7])
		}
	}
}

// checkSeedJSON requires the seed CE's binding in derive's JSON.
func checkSeedJSON(t *testing.T, b []byte) {
	t.Helper()
	var j struct {
		IPv4       string     `json:"ipv4"`
		PSID       int        `json:"psid"`
		Ports      [][]uint16 `json:"ports"`
		MAPAddress string     `json:"map_address"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("derive JSON %q: %v", b, err)
	}
	want := struct {
		IPv4       string
		PSID       int
		Ports      [][]uint16
		MAPAddress string
	}{"192.0.2.59/32", 20, [][]uint16{{40960, 43007}}, "2001:db8:ce:774:0:c000:23b:14"}
	if got := (struct {
		IPv4       string
		PSID       int
		Ports      [][]uint16
		MAPAddress string
	}{j.IPv4, j.PSID, j.Ports, j.MAPAddress}); !reflect.DeepEqual(got, want) {
		t.Errorf("derive: %+v, want %+v", got, want)
	}
}
