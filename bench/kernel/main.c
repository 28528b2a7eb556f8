/* x86vm benchmark kernel: runs each section, timed with RDTSC, and prints one
 * machine-readable line per section:
 *   BENCH begin version=1 scale=S multiboot=ok|bad
 *   BENCH section name=NAME iters=N check=0xXXXXXXXX cycles=0xXXXXXXXXXXXXXXXX
 *   BENCH end sections=K check=0xXXXXXXXX cycles=0x...
 *   BENCH done
 * Command line (multiboot): "scale=N" multiplies the work of every section,
 * "only=alu,x87" runs just the named sections. */
#include "bench.h"

#ifndef DEFAULT_SCALE
#define DEFAULT_SCALE 10
#endif

struct section {
    const char *name;
    section_fn fn;
};

static const struct section sections[] = {
    { "alu", sec_alu },
    { "memcpy", sec_memcpy },
    { "string", sec_string },
    { "calls", sec_calls },
    { "x87", sec_x87 },
    { "paging", sec_paging },
};
#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

static const char *find(const char *hay, const char *needle)
{
    for (; *hay; hay++) {
        const char *h = hay, *n = needle;
        while (*n && *h == *n) {
            h++;
            n++;
        }
        if (!*n)
            return hay;
    }
    return 0;
}

static int is_sep(char c) { return c == 0 || c == ' ' || c == '\t'; }

/* Is `name` listed in the comma-separated value that starts at `list`? */
static int listed(const char *list, const char *name)
{
    const char *p = list;
    while (!is_sep(*p)) {
        const char *n = name;
        while (*n && *p == *n) {
            p++;
            n++;
        }
        if (!*n && (*p == ',' || is_sep(*p)))
            return 1;
        while (!is_sep(*p) && *p != ',')
            p++;
        if (*p == ',')
            p++;
    }
    return 0;
}

u32 kmain(u32 magic, const u32 *mbi)
{
    const char *cmdline = "";
    u32 scale = DEFAULT_SCALE;
    const char *only = 0;

    io_init();
    if (magic == 0x2BADB002 && (mbi[0] & 4) && mbi[4])
        cmdline = (const char *)mbi[4];
    const char *s = find(cmdline, "scale=");
    if (s) {
        u32 v = 0;
        for (s += 6; *s >= '0' && *s <= '9'; s++)
            v = v * 10 + (u32)(*s - '0');
        if (v)
            scale = v;
    }
    const char *o = find(cmdline, "only=");
    if (o)
        only = o + 5;

    pr("BENCH begin version=1 scale=");
    pr_u(scale);
    pr(magic == 0x2BADB002 ? " multiboot=ok\n" : " multiboot=bad\n");

    u32 total = 0, count = 0;
    u64 all0 = rdtsc();
    for (u32 i = 0; i < NSECTIONS; i++) {
        if (only && !listed(only, sections[i].name))
            continue;
        u32 iters = 0;
        u64 t0 = rdtsc();
        u32 check = sections[i].fn(scale, &iters);
        u64 t1 = rdtsc();
        total = mix(total, check);
        count++;
        pr("BENCH section name=");
        pr(sections[i].name);
        pr(" iters=");
        pr_u(iters);
        pr(" check=");
        pr_x(check);
        pr(" cycles=");
        pr_x64(t1 - t0);
        pr("\n");
    }
    u64 all1 = rdtsc();
    pr("BENCH end sections=");
    pr_u(count);
    pr(" check=");
    pr_x(total);
    pr(" cycles=");
    pr_x64(all1 - all0);
    pr("\nBENCH done\n");
    return 0;
}
