// Command demo runs the lab the way a user first meets the project
// (`make demo`): the seed's network in namespaces, Kea, br and two
// zero-touch ce-agents; it fetches the seed's page from both clients, pings
// the server, prints both CEs' status and tears everything down (KEEP=1
// leaves the lab up).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/testenv"
)

func step(format string, a ...any) { fmt.Printf("\n== "+format+"\n", a...) }

func main() {
	bin := flag.String("bin", "bin", "directory with ce-agent and br")
	flag.Parse()
	// Interrupted, or our output pipe closed (| head): the Program tears
	// down anyway, never leaving namespaces and processes behind.
	r, abs := testenv.MustProgram("demo", *bin)
	r.Keep = os.Getenv("KEEP") == "1"

	step("bringing up the seed's network: c1, c2, CE 11b, CE 774, BR (+ Kea), s")
	l := lab.Up(r, lab.Options{Bin: abs})
	step("waiting for both CEs to provision through DHCPv6 (no MAP configuration given)")
	start := time.Now()
	if err := l.WaitProvisioned(60 * time.Second); err != nil {
		r.Fatal(err)
	}
	fmt.Printf("both CEs bound after %s\n", time.Since(start).Round(time.Millisecond))

	for _, c := range l.CEs {
		step("%s$ wget http://%s/index.html && head -2 index.html", c.Client.Short, testenv.SeedServer)
		wd := r.TempDir()
		cmd := exec.Command("ip", "netns", "exec", c.Client.Name, "wget", "-nv", "http://"+testenv.SeedServer+"/index.html")
		cmd.Dir, cmd.Stdout, cmd.Stderr = wd, os.Stdout, os.Stdout
		if err := cmd.Run(); err != nil {
			r.Fatalf("wget from %s: %v", c.Client.Short, err)
		}
		b, err := os.ReadFile(filepath.Join(wd, "index.html"))
		if err != nil {
			r.Fatal(err)
		}
		lines := strings.SplitN(string(b), "\n", 3)
		fmt.Println(strings.Join(lines[:min(2, len(lines))], "\n"))
	}

	step("c1$ ping -c 3 %s (ICMP echo ids are NAPTed into the port set too)", testenv.SeedServer)
	out, err := l.C1.Exec("ping", "-c", "3", "-i", "0.3", "-W", "3", testenv.SeedServer)
	fmt.Print(out)
	if err != nil {
		r.Fatal(err)
	}

	for _, c := range l.CEs {
		step("%s$ ce-agent status", c.Name)
		cmd := exec.Command(filepath.Join(abs, "ce-agent"), "status", "--status-socket", c.Socket)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			r.Fatalf("ce-agent status: %v", err)
		}
	}

	if r.Keep {
		step("KEEP=1: the lab stays up")
		fmt.Println("enter a namespace with: ip netns exec NAME bash   (e.g. ce-agent status --status-socket " + l.CEs[1].Socket + ")")
		for _, ns := range []*testenv.NS{l.C1, l.C2, l.CE11b, l.CE774, l.BR, l.S, l.Switch} {
			fmt.Printf("  %-6s %s\n", ns.Short, ns.Name)
		}
		fmt.Println("tear it down with:")
		var pids []string
		for _, p := range []*testenv.Proc{l.Kea, l.Relay, l.Web, l.CEs[0].Agent, l.CEs[1].Agent} {
			pids = append(pids, fmt.Sprint(p.Cmd.Process.Pid))
		}
		fmt.Printf("  kill %s; sleep 1", strings.Join(pids, " "))
		for _, ns := range []*testenv.NS{l.C1, l.C2, l.CE11b, l.CE774, l.BR, l.S, l.Switch} {
			fmt.Printf("; ip netns del %s", ns.Name)
		}
		fmt.Printf("; rm -rf %s\n", r.Dir())
		os.Exit(0)
	}
	step("tearing down")
	r.Exit(0)
}
