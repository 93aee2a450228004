package testenv

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
)

// Program is the T of a program that runs a lab outside `go test` (the
// demo, the headline benchmark): a failure prints and exits, and the lab
// is torn down on exit, on a failure and on SIGINT, SIGTERM or a closed
// output pipe, unless Keep is set and nothing failed.
type Program struct {
	Name string
	Keep bool

	dir      string
	once     sync.Once
	mu       sync.Mutex
	failed   bool
	cleanups []func()
}

// NewProgram returns a Program whose scratch files live under a new
// temporary directory, removed on exit.
func NewProgram(name string) (*Program, error) {
	dir, err := os.MkdirTemp("", name+"-")
	if err != nil {
		return nil, err
	}
	p := &Program{Name: name, dir: dir}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	go func() {
		<-sigs
		p.mu.Lock()
		p.failed = true
		p.mu.Unlock()
		p.Exit(1)
	}()
	return p, nil
}

// MustProgram is NewProgram for a command's main, with the directory of
// the binaries it runs (-bin) made absolute: it prints the error prefixed
// with name and exits (2 for the directory, 1 for the program) instead of
// returning it.
func MustProgram(name, bin string) (p *Program, binDir string) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	if p, err = NewProgram(name); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	return p, abs
}

// Dir is the program's scratch directory.
func (p *Program) Dir() string { return p.dir }

func (p *Program) Helper() {}

func (p *Program) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}

func (p *Program) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// Logf writes to stderr: stdout is the program's own output.
func (p *Program) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func (p *Program) Errorf(format string, args ...any) {
	p.mu.Lock()
	p.failed = true
	p.mu.Unlock()
	fmt.Fprintf(os.Stderr, p.Name+": "+format+"\n", args...)
}

func (p *Program) Fatal(args ...any) { p.Errorf("%s", fmt.Sprint(args...)); p.Exit(1) }

func (p *Program) Fatalf(format string, args ...any) { p.Errorf(format, args...); p.Exit(1) }

func (p *Program) Skip(args ...any) { p.Errorf("cannot run: %s", fmt.Sprint(args...)); p.Exit(1) }

func (p *Program) TempDir() string {
	d, err := os.MkdirTemp(p.dir, "lab-")
	if err != nil {
		p.Fatal(err)
	}
	return d
}

// Exit tears the lab down (unless it is kept and nothing failed) and ends
// the program. The first caller does it; a concurrent one (a signal during
// a failure) waits for it.
func (p *Program) Exit(code int) {
	p.once.Do(func() {
		if !p.Keep || p.Failed() {
			p.mu.Lock()
			cleanups := p.cleanups
			p.mu.Unlock()
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
			os.RemoveAll(p.dir)
		}
		os.Exit(code)
	})
	select {}
}
