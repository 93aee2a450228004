package kernels

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Initramfs is a set of files for a gzip'd newc cpio archive, the format
// the kernel unpacks into its rootfs (Documentation/driver-api/early-userspace/
// buffer-format.rst). Paths are absolute inside the archive; parent
// directories are added by themselves, because the kernel's unpacker
// creates no missing parents.
type Initramfs struct {
	entries map[string]*entry
}

type entry struct {
	mode  uint32 // type and permission bits (S_IF*)
	src   string // host file to copy, for regular files
	data  []byte // contents, for regular files without src and for symlinks (the target)
	major uint32 // device numbers, for device nodes
	minor uint32
}

// File mode type bits of cpio (the same as stat(2)'s).
const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
)

// NewInitramfs returns an empty archive.
func NewInitramfs() *Initramfs { return &Initramfs{entries: map[string]*entry{}} }

func clean(p string) string { return path.Clean("/" + p)[1:] }

func (a *Initramfs) add(p string, e *entry) {
	p = clean(p)
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := a.entries[d]; !ok {
			a.entries[d] = &entry{mode: sIFDIR | 0o755}
		}
	}
	a.entries[p] = e
}

// Dir adds a directory.
func (a *Initramfs) Dir(p string, perm uint32) { a.add(p, &entry{mode: sIFDIR | perm}) }

// CopyFile adds the host file src at p with permissions perm; it is read
// when the archive is written.
func (a *Initramfs) CopyFile(p, src string, perm uint32) {
	a.add(p, &entry{mode: sIFREG | perm, src: src})
}

// Bytes adds a regular file with the given contents.
func (a *Initramfs) Bytes(p string, data []byte, perm uint32) {
	a.add(p, &entry{mode: sIFREG | perm, data: data})
}

// Symlink adds a symbolic link to target.
func (a *Initramfs) Symlink(p, target string) {
	a.add(p, &entry{mode: sIFLNK | 0o777, data: []byte(target)})
}

// CharDev adds a character device node.
func (a *Initramfs) CharDev(p string, perm, major, minor uint32) {
	a.add(p, &entry{mode: sIFCHR | perm, major: major, minor: minor})
}

// Has reports whether p is in the archive.
func (a *Initramfs) Has(p string) bool { _, ok := a.entries[clean(p)]; return ok }

// WriteFile writes the archive, gzip'd, to file.
func (a *Initramfs) WriteFile(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	// BestSpeed: the archive is rebuilt on every run and most of its bytes
	// are Go binaries, which compress little better at higher levels.
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return err
	}
	err = a.Write(zw)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("kernels: write %s: %w", file, err)
	}
	return nil
}

// Write writes the uncompressed newc archive to w, parents before their
// children.
func (a *Initramfs) Write(w io.Writer) error {
	names := make([]string, 0, len(a.entries))
	for p := range a.entries {
		names = append(names, p)
	}
	// Sorting by path component puts every directory before what it holds.
	sort.Slice(names, func(i, j int) bool { return lessPath(names[i], names[j]) })
	cw := &countWriter{w: w}
	ino := uint32(1)
	for _, p := range names {
		e := a.entries[p]
		var size int64
		var src *os.File
		switch e.mode &^ 0o7777 {
		case sIFREG:
			if e.src != "" {
				f, err := os.Open(e.src)
				if err != nil {
					return fmt.Errorf("kernels: initramfs %s: %w", p, err)
				}
				fi, err := f.Stat()
				if err != nil {
					f.Close()
					return err
				}
				src, size = f, fi.Size()
			} else {
				size = int64(len(e.data))
			}
		case sIFLNK:
			size = int64(len(e.data))
		}
		if size > 0xffffffff {
			return fmt.Errorf("kernels: initramfs %s: %d bytes is too big for newc", p, size)
		}
		err := writeHeader(cw, p, e, ino, uint32(size))
		if err == nil {
			if src != nil {
				var n int64
				n, err = io.Copy(cw, src)
				src.Close()
				if err == nil && n != size {
					err = fmt.Errorf("kernels: initramfs %s: %s changed while copying", p, e.src)
				}
			} else if size > 0 {
				_, err = cw.Write(e.data)
			}
		}
		if err == nil {
			err = cw.pad()
		}
		if err != nil {
			return err
		}
		ino++
	}
	if err := writeHeader(cw, "TRAILER!!!", &entry{}, 0, 0); err != nil {
		return err
	}
	return cw.pad()
}

// lessPath orders paths component by component ("a/b" before "a-b", "a"
// before "a/b").
func lessPath(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

func writeHeader(cw *countWriter, name string, e *entry, ino, size uint32) error {
	nlink := uint32(1)
	if e.mode&^0o7777 == sIFDIR {
		nlink = 2
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize (with the NUL), check.
	_, err := fmt.Fprintf(cw, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%s\x00",
		ino, e.mode, 0, 0, nlink, 0, size, 0, 0, e.major, e.minor, len(name)+1, 0, name)
	if err != nil {
		return err
	}
	return cw.pad()
}

// countWriter pads to the 4-byte alignment newc wants after headers and
// file data.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countWriter) pad() error {
	if r := c.n % 4; r != 0 {
		_, err := c.Write(make([]byte, 4-r))
		return err
	}
	return nil
}
