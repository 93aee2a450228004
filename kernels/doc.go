// Package kernels is `make test-kernels`: the product on the kernels and
// CPUs routers run, not only on the development machine's (issue 13).
//
// For each entry of Matrix (Debian's amd64 5.10, 6.1 and 6.12, arm64,
// armhf, mipsel and s390x 6.1) the host command kernels/cmd/matrix
//
//  1. resolves the kernel's meta-package with a private apt configuration
//     under the cache directory (Archive: its own sources, lists and
//     APT::Architectures, so the host's apt and dpkg are untouched),
//     downloads the concrete linux-image package once, unpacks it with
//     dpkg-deb -x and indexes its modules with depmod -b;
//  2. downloads bookworm's iproute2, iputils-ping, procps, ethtool,
//     nftables and tcpdump for the architecture with their library closure
//     into a sysroot (the namespace tests exec these tools);
//  3. cross-builds (CGO off) the guest's /init (kernels/init), ce-agent,
//     br and the test binaries of TestPackages (go test -c), and assembles
//     a gzip'd newc initramfs (Initramfs, our own cpio writer) with them,
//     the modules of Modules and their dependencies in load order
//     (modprobe --show-depends, decompressed on the host), each tool with
//     its ELF interpreter and DT_NEEDED closure, every testdata directory,
//     and the plan of Steps (package proto);
//  4. boots it under qemu-system-* with TCG (no KVM here), -nographic
//     -no-reboot -nic none, two VMs at a time, each killed (by PID) after
//     a timeout, and reads the serial console: the guest prints its results
//     as proto lines, its last line is "MAPT-KERNELS RESULT: PASS" or
//     "FAIL: reasons", then it reboots, which ends qemu;
//  5. prints the table (kernel x arch x attach mode, JIT per program,
//     lab, dataplane, agent and relay tests), writes it to
//     kernels/results/latest.md (with latest.json), and fails when any
//     kernel did not pass.
//
// The guest has no Go toolchain: testenv.BuildBinary takes ce-agent and br
// from MAPT_BIN_DIR. It runs with CI=true, so a test that would skip for a
// missing tool or feature fails instead. It has no modprobe either, so the
// kernel cannot autoload what the product forgot to need explicitly, and
// xfrm_user is never loaded: OpenWrt images without IPsec have none.
//
// The cache (downloads, unpacked kernels and sysroots) is
// $MAPT_KERNELS_CACHE, else $XDG_CACHE_HOME/mapt-kernels (~/.cache);
// a second run downloads nothing. Everything else goes to build/kernels.
package kernels
