// Hardware CRC-32C: SSE4.2 on x86-64, the CRC extension on AArch64.
//
// The instruction folds 8 bytes into the CRC register with a latency of about
// three cycles but a throughput of one per cycle, so one dependent chain runs
// at a third of the possible rate. The fast path therefore splits a block into
// three equal streams, runs three independent chains side by side, and joins
// them: for raw registers (no inversion), CRC(s, A‖B) = shift(CRC(s, A), |B|)
// ^ CRC(0, B), where shift(c, n) multiplies c by x^(8n) modulo P. Shifting by
// a fixed stream length is linear in the 32 bits of c, so it is four lookups
// in tables built once per stream length.
#include "sluice_crc.h"

#include <pthread.h>
#include <string.h>

#define SLUICE_POLY 0x82F63B78u /* 0x1EDC6F41 bit-reflected */

#if (defined(__x86_64__) || defined(__aarch64__)) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SLUICE_HW 1
#else
#define SLUICE_HW 0
#endif

#if SLUICE_HW && defined(__x86_64__)
#include <nmmintrin.h>
#define SLUICE_TARGET __attribute__((target("sse4.2")))
#define SLUICE_CRC8(c, b) ((uint32_t)_mm_crc32_u8((c), (b)))
#define SLUICE_CRC64(c, v) ((uint32_t)_mm_crc32_u64((c), (v)))
#define SLUICE_HW_NAME "sse4.2"
#elif SLUICE_HW && defined(__aarch64__)
#include <arm_acle.h>
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1UL << 7)
#endif
#endif
#define SLUICE_TARGET __attribute__((target("crc")))
#define SLUICE_CRC8(c, b) __crc32cb((c), (b))
#define SLUICE_CRC64(c, v) __crc32cd((c), (v))
#define SLUICE_HW_NAME "armv8-crc"
#endif

#if SLUICE_HW
// ---------------------------------------------------------------------------
// GF(2) arithmetic modulo P in the reflected representation: bit 31 holds the
// coefficient of x^0 and bit 0 that of x^31. Used only to build the tables.

static uint32_t multiply_mod_p(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (int i = 0; i < 32; i++) {
        if (a & (0x80000000u >> i)) product ^= b;
        b = (b & 1) ? (b >> 1) ^ SLUICE_POLY : b >> 1; /* b *= x */
    }
    return product;
}

/// x^(8 * bytes) mod P.
static uint32_t x_to_8n(size_t bytes) {
    uint32_t result = 0x80000000u; /* 1 */
    uint32_t square = 0x00800000u; /* x^8 */
    while (bytes) {
        if (bytes & 1) result = multiply_mod_p(result, square);
        square = multiply_mod_p(square, square);
        bytes >>= 1;
    }
    return result;
}

typedef struct {
    uint32_t t[4][256];
} shift_table;

static void build_shift(shift_table *s, size_t bytes) {
    const uint32_t k = x_to_8n(bytes);
    for (int lane = 0; lane < 4; lane++)
        for (uint32_t v = 0; v < 256; v++) s->t[lane][v] = multiply_mod_p(k, v << (8 * lane));
}

static inline uint32_t shift(const shift_table *s, uint32_t c) {
    return s->t[0][c & 0xFF] ^ s->t[1][(c >> 8) & 0xFF] ^ s->t[2][(c >> 16) & 0xFF] ^ s->t[3][c >> 24];
}

// Per-stream lengths: long blocks amortise the join; short blocks keep
// mid-sized buffers (a few KiB) on three chains as well.
#define SLUICE_LONG 8192
#define SLUICE_SHORT 256

static shift_table long_shift, short_shift;
#endif

static int hardware_present;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static int detect_hardware(void) {
#if SLUICE_HW && defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
#elif SLUICE_HW && defined(__aarch64__) && defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) ? 1 : 0;
#elif SLUICE_HW && defined(__aarch64__) && defined(__APPLE__)
    return 1; /* every Apple arm64 core implements ARMv8.1-A, which includes CRC */
#else
    return 0;
#endif
}

static void initialize(void) {
#if SLUICE_HW
    build_shift(&long_shift, SLUICE_LONG);
    build_shift(&short_shift, SLUICE_SHORT);
#endif
    hardware_present = detect_hardware();
}

int sluice_crc32c_hardware_available(void) {
    pthread_once(&init_once, initialize);
    return hardware_present;
}

const char *sluice_crc32c_hardware_name(void) {
#if SLUICE_HW
    if (sluice_crc32c_hardware_available()) return SLUICE_HW_NAME;
#endif
    return "none";
}

/// Bit at a time: never the fast path (callers check availability first), but
/// a caller that does not still gets the right value rather than a wrong one.
static uint32_t software_update(uint32_t crc, const unsigned char *p, size_t n) {
    while (n-- > 0) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ SLUICE_POLY : crc >> 1;
    }
    return crc;
}

#if SLUICE_HW

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/// Three chains over [p, p+len), [p+len, p+2len), [p+2len, p+3len), joined.
SLUICE_TARGET static inline uint32_t three_streams(
    uint32_t c0, const unsigned char *p, size_t len, const shift_table *s) {
    uint32_t c1 = 0, c2 = 0;
    const unsigned char *end = p + len;
    do {
        c0 = SLUICE_CRC64(c0, load64(p));
        c1 = SLUICE_CRC64(c1, load64(p + len));
        c2 = SLUICE_CRC64(c2, load64(p + 2 * len));
        p += 8;
    } while (p < end);
    c0 = shift(s, c0) ^ c1;
    return shift(s, c0) ^ c2;
}

SLUICE_TARGET static uint32_t hardware_serial(uint32_t crc, const unsigned char *p, size_t n) {
    while (n >= 8) {
        crc = SLUICE_CRC64(crc, load64(p));
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        crc = SLUICE_CRC8(crc, *p++);
        n--;
    }
    return crc;
}

SLUICE_TARGET static uint32_t hardware_update(uint32_t crc, const unsigned char *p, size_t n) {
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        crc = SLUICE_CRC8(crc, *p++);
        n--;
    }
    while (n >= 3 * SLUICE_LONG) {
        crc = three_streams(crc, p, SLUICE_LONG, &long_shift);
        p += 3 * SLUICE_LONG;
        n -= 3 * SLUICE_LONG;
    }
    while (n >= 3 * SLUICE_SHORT) {
        crc = three_streams(crc, p, SLUICE_SHORT, &short_shift);
        p += 3 * SLUICE_SHORT;
        n -= 3 * SLUICE_SHORT;
    }
    /* What is left is shorter than three short blocks: one dependency chain. */
    return hardware_serial(crc, p, n);
}

#endif

uint32_t sluice_crc32c_hardware(uint32_t crc, const void *data, size_t length) {
#if SLUICE_HW
    if (sluice_crc32c_hardware_available()) return hardware_update(crc, (const unsigned char *)data, length);
#endif
    return software_update(crc, (const unsigned char *)data, length);
}

uint32_t sluice_crc32c_hardware_serial(uint32_t crc, const void *data, size_t length) {
#if SLUICE_HW
    if (sluice_crc32c_hardware_available()) return hardware_serial(crc, (const unsigned char *)data, length);
#endif
    return software_update(crc, (const unsigned char *)data, length);
}
