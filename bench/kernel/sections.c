/* The benchmark sections that need no special CPU state. Each one does `scale`
 * units of work and returns a checksum of everything it computed, so that a
 * wrong result on any emulator shows up as a checksum mismatch. */
#include "bench.h"

/* Work per scale unit, tuned so that each section takes roughly 50 ms per unit
 * on qemu-system-i386 TCG on a 2-core Debian VM. */
#define ALU_REPS 8
#define MEMCPY_REPS 60
#define STRING_REPS 6
#define STR_SIZE 262144   /* bytes per string buffer */
#define FIB_N 24
#define FIB_REPS 4
#define X87_REPS 1
#define NBODY_STEPS 700

/* ---------------------------------------------------------------- alu --- */

static u32 alu_buf[16384];          /* 64 KiB of pseudo-random data */
static u8 sieve_buf[262144];
static u32 crc_table[256];

static u32 xorshift(u32 *state)
{
    u32 x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static u32 crc32_bitwise(const u8 *p, u32 n, u32 crc)
{
    crc = ~crc;
    for (u32 i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static u32 crc32_table(const u8 *p, u32 n, u32 crc)
{
    crc = ~crc;
    for (u32 i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static u32 sieve(u32 n)
{
    for (u32 i = 0; i < n; i++)
        sieve_buf[i] = 1;
    sieve_buf[0] = sieve_buf[1] = 0;
    for (u32 i = 2; i * i < n; i++)
        if (sieve_buf[i])
            for (u32 j = i * i; j < n; j += i)
                sieve_buf[j] = 0;
    u32 count = 0;
    for (u32 i = 0; i < n; i++)
        count += sieve_buf[i];
    return count;
}

/* A multiply/rotate hash in the style of MurmurHash3's 32-bit mix. */
static u32 murmur(const u32 *w, u32 n, u32 h)
{
    for (u32 i = 0; i < n; i++) {
        u32 k = w[i] * 0xCC9E2D51u;
        k = rotl32(k, 15) * 0x1B873593u;
        h = rotl32(h ^ k, 13) * 5 + 0xE6546B64u;
    }
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    return h;
}

static u32 gcd(u32 a, u32 b)
{
    while (b) {
        u32 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

u32 sec_alu(u32 scale, u32 *iters)
{
    u32 seed = 0x2545F491u;
    for (u32 i = 0; i < 16384; i++)
        alu_buf[i] = xorshift(&seed);
    for (u32 i = 0; i < 256; i++) {
        u32 c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
        crc_table[i] = c;
    }
    const u8 *bytes = (const u8 *)alu_buf;
    u32 check = 0, n = 0;
    for (u32 r = 0; r < scale * ALU_REPS; r++) {
        alu_buf[r & 16383] ^= r;                     /* vary the input each round */
        check = mix(check, crc32_table(bytes, 65536, r));
        check = mix(check, crc32_bitwise(bytes + (r & 4095), 8192, check));
        check = mix(check, murmur(alu_buf, 16384, r));
        check = mix(check, sieve(262144 - (r & 255)));
        u32 g = 0;
        for (u32 i = 1; i <= 2000; i++)
            g += gcd(i * 7919u + r, (i * 104729u) % 65521u + 1);
        check = mix(check, g);
        n++;
    }
    *iters = n;
    return check;
}

/* ------------------------------------------------------------- memcpy --- */

static u8 mc_src[262144] __attribute__((aligned(16)));
static u8 mc_dst[262144] __attribute__((aligned(16)));

/* Plain C loops; the build passes -fno-tree-loop-distribute-patterns and
 * -fno-builtin so that gcc keeps them as loops instead of calling memcpy. */
__attribute__((noinline)) static void copy_bytes(u8 *d, const u8 *s, u32 n)
{
    for (u32 i = 0; i < n; i++)
        d[i] = s[i];
}

__attribute__((noinline)) static void copy_words(u32 *d, const u32 *s, u32 n)
{
    for (u32 i = 0; i < n; i++)
        d[i] = s[i];
}

__attribute__((noinline)) static void copy_halves_backward(u16 *d, const u16 *s, u32 n)
{
    while (n) {
        n--;
        d[n] = s[n];
    }
}

static u32 hash_words(const u32 *w, u32 n)
{
    u32 h = 0;
    for (u32 i = 0; i < n; i++)
        h = (h ^ w[i]) * 0x01000193u;
    return h;
}

u32 sec_memcpy(u32 scale, u32 *iters)
{
    u32 seed = 0x9E3779B9u;
    u32 *src32 = (u32 *)mc_src;
    for (u32 i = 0; i < 65536; i++)
        src32[i] = xorshift(&seed);
    u32 check = 0, bytes = 0;
    for (u32 r = 0; r < scale * MEMCPY_REPS; r++) {
        mc_src[(r * 4099) & 262143] ^= (u8)(r + 1);
        u32 off = r & 7;
        copy_bytes(mc_dst + off, mc_src + (7 - off), 65536);
        copy_words((u32 *)mc_dst + 16384, src32, 32768);
        copy_halves_backward((u16 *)mc_dst + 98304, (const u16 *)mc_src + 1, 16384);
        bytes += 65536 + 131072 + 32768;
        check = mix(check, ((u32 *)mc_dst)[(r * 613) & 65535]);
    }
    check = mix(check, hash_words((const u32 *)mc_dst, 65536));
    *iters = bytes;
    return check;
}

/* ------------------------------------------------------------- string --- */

static u8 str_a[STR_SIZE + 64] __attribute__((aligned(16)));
static u8 str_b[STR_SIZE + 64] __attribute__((aligned(16)));

static inline void rep_movsb(void *d, const void *s, u32 n)
{
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

static inline void rep_movsd(void *d, const void *s, u32 n)
{
    __asm__ volatile("rep movsl" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

/* Backward copy with DF=1: d and s point at the last dword. */
static inline void rep_movsd_backward(void *d, const void *s, u32 n)
{
    __asm__ volatile("std\n\trep movsl\n\tcld" : "+D"(d), "+S"(s), "+c"(n) : : "memory", "cc");
}

static inline void rep_stosd(void *d, u32 v, u32 n)
{
    __asm__ volatile("rep stosl" : "+D"(d), "+c"(n) : "a"(v) : "memory");
}

/* Returns ECX after REPE CMPSB (0 when all n bytes are equal and the last
 * compared pair decides). Also folds ZF into bit 31. */
static inline u32 repe_cmpsb(const void *a, const void *b, u32 n)
{
    u8 ne;
    __asm__ volatile("repe cmpsb\n\tsetne %3"
                     : "+S"(a), "+D"(b), "+c"(n), "=q"(ne)
                     : : "memory", "cc");
    return n | ((u32)ne << 31);
}

u32 sec_string(u32 scale, u32 *iters)
{
    u32 check = 0, ops = 0;
    for (u32 r = 0; r < scale * STRING_REPS; r++) {
        rep_stosd(str_a, 0x01010101u * (r + 1), STR_SIZE / 4);
        str_a[STR_SIZE - 1 - (r & 1023)] = (u8)r;
        rep_movsd(str_b, str_a, STR_SIZE / 4);
        rep_movsb(str_b + 3, str_a + 1, STR_SIZE - 8);                /* unaligned */
        rep_movsd_backward(str_a + STR_SIZE - 4 + 16, str_a + STR_SIZE - 4, STR_SIZE / 16);
        check = mix(check, repe_cmpsb(str_a + 16, str_b + 18, STR_SIZE - 64));
        check = mix(check, repe_cmpsb(str_b, str_b, STR_SIZE));
        /* Many short copies: per-instruction overhead rather than bandwidth. */
        for (u32 i = 0; i < 2048; i++)
            rep_movsb(str_b + ((i * 97) & 65535), str_a + ((i * 61 + r) & 65535), 13 + (i & 63));
        check = mix(check, ((u32 *)str_b)[(r * 7919) & (STR_SIZE / 4 - 1)]);
        check = mix(check, ((u32 *)str_a)[(r * 104729) & (STR_SIZE / 4 - 1)]);
        ops += 2048 + 6;
    }
    u32 h = 0;
    for (u32 i = 0; i < STR_SIZE / 4; i += 61)
        h = mix(h, ((u32 *)str_b)[i] + ((u32 *)str_a)[i]);
    *iters = ops;
    return mix(check, h);
}

/* -------------------------------------------------------------- calls --- */

__attribute__((noinline, optimize("no-optimize-sibling-calls")))
static u32 fib(u32 n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static u32 fib_iter(u32 n)
{
    u32 a = 0, b = 1;
    while (n--) {
        u32 t = a + b;
        a = b;
        b = t;
    }
    return a;
}

static u32 op_add(u32 a, u32 b) { return a + b; }
static u32 op_sub(u32 a, u32 b) { return a - b; }
static u32 op_xor(u32 a, u32 b) { return a ^ b; }
static u32 op_mul(u32 a, u32 b) { return a * (b | 1); }
static u32 op_rol(u32 a, u32 b) { return rotl32(a, (b & 30) + 1); }
static u32 op_and(u32 a, u32 b) { return (a & b) + 0x9E37; }
static u32 op_or(u32 a, u32 b) { return (a | b) - 0x79B9; }
static u32 op_neg(u32 a, u32 b) { return b - a; }

static u32 (*const ops_table[8])(u32, u32) = {
    op_add, op_sub, op_xor, op_mul, op_rol, op_and, op_or, op_neg,
};

u32 sec_calls(u32 scale, u32 *iters)
{
    u32 check = 0, calls = 0;
    u32 (*volatile const *table)(u32, u32) = ops_table;   /* keep the calls indirect */
    for (u32 r = 0; r < scale * FIB_REPS; r++) {
        u32 n = FIB_N + (r & 1);
        check = mix(check, fib(n));
        calls += 2 * fib_iter(n + 1) - 1;  /* calls made by fib(n) */
        u32 a = r, seed = 0xC0FFEE + r;
        for (u32 i = 0; i < 100000; i++)
            a = table[xorshift(&seed) & 7](a, i);
        calls += 100000;
        check = mix(check, a);
    }
    *iters = calls;
    return check;
}

/* ---------------------------------------------------------------- x87 --- */

union dbits {
    double d;
    u32 w[2];
};

static u32 dcheck(double d)
{
    union dbits u;
    u.d = d;
    return u.w[0] ^ rotl32(u.w[1], 7);
}

static u32 mandelbrot(int w, int h, int maxit, double x0, double y0, double step)
{
    u32 total = 0;
    double ci = y0;
    for (int py = 0; py < h; py++, ci += step) {
        double cr = x0;
        for (int px = 0; px < w; px++, cr += step) {
            double zr = 0, zi = 0, zr2 = 0, zi2 = 0;
            int it = 0;
            while (it < maxit && zr2 + zi2 <= 4.0) {
                zi = 2.0 * zr * zi + ci;
                zr = zr2 - zi2 + cr;
                zr2 = zr * zr;
                zi2 = zi * zi;
                it++;
            }
            total += (u32)it;
        }
    }
    return total;
}

#define NBODIES 5

struct body {
    double x, y, z, vx, vy, vz, m;
};

static double nbody(int steps, double dt)
{
    static const double init[NBODIES][7] = {
        { 0, 0, 0, 0, 0, 0, 39.47841760435743 },
        { 4.84143144246472090, -1.16032004402742839, -0.103622044471123109,
          0.606326392995832, 2.81198684491626, -0.02521836165988763, 0.03769367487038949 },
        { 8.34336671824457987, 4.12479856412430479, -0.403523417114321381,
          -1.01077434617730, 1.82566237123041, 0.00841576137658415, 0.011286326131968767 },
        { 12.8943695621391310, -15.1111514016986312, -0.223307578892655734,
          1.08279100644154, 0.868713018169608, -0.01083270493825, 0.0017237240570597112 },
        { 15.3796971148509165, -25.9193146099879641, 0.179258772950371181,
          0.979090732243898, 0.594698998647676, -0.034755955504078, 0.0020336868699246304 },
    };
    struct body b[NBODIES];
    for (int i = 0; i < NBODIES; i++) {
        b[i].x = init[i][0]; b[i].y = init[i][1]; b[i].z = init[i][2];
        b[i].vx = init[i][3]; b[i].vy = init[i][4]; b[i].vz = init[i][5];
        b[i].m = init[i][6];
    }
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < NBODIES; i++)
            for (int j = i + 1; j < NBODIES; j++) {
                double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
                double d2 = dx * dx + dy * dy + dz * dz;
                double mag = dt / (d2 * __builtin_sqrt(d2));
                b[i].vx -= dx * b[j].m * mag; b[i].vy -= dy * b[j].m * mag; b[i].vz -= dz * b[j].m * mag;
                b[j].vx += dx * b[i].m * mag; b[j].vy += dy * b[i].m * mag; b[j].vz += dz * b[i].m * mag;
            }
        for (int i = 0; i < NBODIES; i++) {
            b[i].x += dt * b[i].vx; b[i].y += dt * b[i].vy; b[i].z += dt * b[i].vz;
        }
    }
    double e = 0;
    for (int i = 0; i < NBODIES; i++) {
        e += 0.5 * b[i].m * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
        for (int j = i + 1; j < NBODIES; j++) {
            double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
            e -= b[i].m * b[j].m / __builtin_sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

u32 sec_x87(u32 scale, u32 *iters)
{
    u32 check = 0, n = 0;
    for (u32 r = 0; r < scale * X87_REPS; r++) {
        double shift = (double)(r & 7) * (1.0 / 1024.0);
        u32 it = mandelbrot(40, 30, 256, -2.0 + shift, -1.125, 2.5 / 40.0);
        check = mix(check, it);
        n += it;
        check = mix(check, dcheck(nbody(NBODY_STEPS, 0.01)));
        n += NBODY_STEPS;
    }
    *iters = n;
    return check;
}
