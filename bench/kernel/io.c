/* Output: every byte goes to the debug console (port 0xE9) and to COM1. */
#include "bench.h"

#define COM1 0x3F8

void io_init(void)
{
    outb(COM1 + 1, 0x00);   /* no interrupts */
    outb(COM1 + 3, 0x80);   /* DLAB on */
    outb(COM1 + 0, 0x01);   /* divisor 1: 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);   /* 8N1, DLAB off */
    outb(COM1 + 2, 0x07);   /* FIFO on and cleared */
    outb(COM1 + 4, 0x03);   /* DTR, RTS */
}

static void putc_(char c)
{
    outb(0xE9, (u8)c);
    /* Wait for THR empty, but never forever: a machine without a UART must
     * not hang the benchmark. */
    for (u32 spin = 0; spin < 100000; spin++)
        if (inb(COM1 + 5) & 0x20)
            break;
    outb(COM1, (u8)c);
}

void pr(const char *s)
{
    while (*s)
        putc_(*s++);
}

void pr_u(u32 v)
{
    char buf[11];
    int i = 10;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    pr(buf + i);
}

static void hex_digits(u32 v, int n)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = n - 1; i >= 0; i--)
        putc_(digits[(v >> (i * 4)) & 15]);
}

void pr_x(u32 v)
{
    pr("0x");
    hex_digits(v, 8);
}

void pr_x64(u64 v)
{
    pr("0x");
    hex_digits((u32)(v >> 32), 8);
    hex_digits((u32)v, 8);
}
