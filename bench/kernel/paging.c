/* The paging section: builds 4 KiB page tables, enables CR0.PG and touches
 * thousands of pages through a scrambled mapping, reloading CR3 (a full TLB
 * flush) and using INVLPG along the way. Paging is switched off again at the
 * end, so the other sections run with paging disabled.
 *
 * Layout: 0..32 MiB identity-mapped (kernel, stack, tables); virtual
 * 0x40000000..+16 MiB maps to physical 16..32 MiB, virtual page v going to
 * physical page (v * PERM_MUL) mod 4096, a permutation. */
#include "bench.h"

#define PAGING_PASSES 120         /* passes over the window per scale unit */
#define WINDOW_VIRT 0x40000000u
#define WINDOW_PHYS 0x01000000u
#define WINDOW_PAGES 4096u
#define PERM_MUL 2053u

static u32 page_dir[1024] __attribute__((aligned(4096)));
static u32 page_tables[12][1024] __attribute__((aligned(4096)));

static inline u32 phys_page(u32 v) { return (v * PERM_MUL) & (WINDOW_PAGES - 1); }

static inline void write_cr3(u32 v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline u32 read_cr3(void) { u32 v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline u32 read_cr0(void) { u32 v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline void write_cr0(u32 v) { __asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }
static inline void invlpg(u32 va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }

static void zero_dwords(u32 *p, u32 n)
{
    __asm__ volatile("rep stosl" : "+D"(p), "+c"(n) : "a"(0) : "memory");
}

u32 sec_paging(u32 scale, u32 *iters)
{
    /* Identity map 0..32 MiB with tables 0..7. */
    for (u32 t = 0; t < 8; t++) {
        for (u32 i = 0; i < 1024; i++)
            page_tables[t][i] = ((t * 1024 + i) << 12) | 3;
        page_dir[t] = (u32)page_tables[t] | 3;
    }
    /* The scrambled 16 MiB window with tables 8..11. */
    for (u32 v = 0; v < WINDOW_PAGES; v++)
        page_tables[8 + v / 1024][v % 1024] = (WINDOW_PHYS + (phys_page(v) << 12)) | 3;
    for (u32 t = 0; t < 4; t++)
        page_dir[(WINDOW_VIRT >> 22) + t] = (u32)page_tables[8 + t] | 3;

    zero_dwords((u32 *)WINDOW_PHYS, WINDOW_PAGES * 1024);

    write_cr3((u32)page_dir);
    write_cr0(read_cr0() | 0x80000000u);

    volatile u32 *win = (volatile u32 *)WINDOW_VIRT;
    u32 acc = 0, touches = 0;
    u32 passes = scale * PAGING_PASSES;
    for (u32 pass = 0; pass < passes; pass++) {
        for (u32 i = 0; i < WINDOW_PAGES; i++) {
            u32 page = (i * 1031u + pass * 17u) & (WINDOW_PAGES - 1);
            volatile u32 *w = win + page * 1024 + ((page * 13u) & 1023);
            u32 x = *w + (i ^ pass);
            *w = x;
            acc += x;
        }
        touches += WINDOW_PAGES;
        if ((pass & 3) == 3)
            write_cr3(read_cr3());                   /* flush the whole TLB */
        else
            invlpg(WINDOW_VIRT + ((pass * 409u) & (WINDOW_PAGES - 1)) * 4096);
        acc = rotl32(acc, 3);
    }

    /* Check the mapping: each touched word must be visible at the physical
     * page the permutation says, read through the identity map. */
    u32 mismatches = 0, sum = 0;
    for (u32 v = 0; v < WINDOW_PAGES; v++) {
        u32 off = (v * 13u) & 1023;
        u32 via_window = win[v * 1024 + off];
        u32 via_phys = ((volatile u32 *)(WINDOW_PHYS + (phys_page(v) << 12)))[off];
        mismatches += via_window != via_phys;
        sum = mix(sum, via_window);
    }

    write_cr0(read_cr0() & ~0x80000000u);
    *iters = touches;
    return mix(mix(acc, sum), mismatches);
}
