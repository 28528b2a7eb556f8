/* Shared declarations for the x86vm benchmark kernel (freestanding, i386). */
#ifndef BENCH_H
#define BENCH_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}
static inline u32 rotl32(u32 x, u32 r) { return (x << r) | (x >> (32 - r)); }

/* Mixes a value into a running checksum (order-sensitive). */
static inline u32 mix(u32 acc, u32 v) { return rotl32(acc ^ v, 5) * 0x9E3779B1u + 0x7F4A7C15u; }

/* io.c */
void io_init(void);
void pr(const char *s);
void pr_u(u32 v);
void pr_x(u32 v);
void pr_x64(u64 v);

/* A section does scale units of work, stores its natural iteration count in
 * *iters and returns a checksum of its results. */
typedef u32 (*section_fn)(u32 scale, u32 *iters);
u32 sec_alu(u32 scale, u32 *iters);
u32 sec_memcpy(u32 scale, u32 *iters);
u32 sec_string(u32 scale, u32 *iters);
u32 sec_calls(u32 scale, u32 *iters);
u32 sec_x87(u32 scale, u32 *iters);
u32 sec_paging(u32 scale, u32 *iters);

#endif
