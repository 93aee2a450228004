/* Architecture-neutral stand-in for <asm/types.h>: the BPF target has no
 * multiarch include directory, and the integer types are the same on every
 * Linux architecture (int-ll64). */
#include <asm-generic/int-ll64.h>
