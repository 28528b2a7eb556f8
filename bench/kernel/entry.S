/* Multiboot v1 entry for the x86vm benchmark kernel.
 * The loader leaves us in flat 32-bit protected mode with EAX = magic and
 * EBX = multiboot info. We load our own GDT (v86 sets up segment caches
 * without a GDT), clear .bss, initialise the FPU and call kmain.
 * kmain's return value v is written to port 0xF4 (isa-debug-exit). */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003          /* page-align modules, want memory info */

        .section .multiboot, "a"
        .align 4
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

        .section .text
        .globl _start
_start:
        cli
        cld
        movl    $stack_top, %esp
        movl    %eax, %esi              /* keep the magic across the bss clear */
        lgdt    gdt_desc
        ljmp    $0x08, $1f
1:      movw    $0x10, %cx
        movw    %cx, %ds
        movw    %cx, %es
        movw    %cx, %fs
        movw    %cx, %gs
        movw    %cx, %ss

        movl    $__bss_start, %edi
        movl    $__bss_end, %ecx
        subl    %edi, %ecx
        shrl    $2, %ecx
        xorl    %eax, %eax
        rep stosl

        /* FPU: enabled, native error reporting off, precision control = double
         * (53-bit mantissa) so that every emulator computes the same bits. */
        movl    %cr0, %eax
        andl    $~0x0000000C, %eax      /* clear EM and TS */
        orl     $0x00000022, %eax       /* set MP and NE */
        movl    %eax, %cr0
        fninit
        fldcw   fpu_cw

        pushl   %ebx
        pushl   %esi
        call    kmain

        movw    $0xF4, %dx              /* isa-debug-exit: status (v << 1) | 1 */
        outb    %al, %dx
2:      cli
        hlt
        jmp     2b

        .section .rodata
        .align 8
gdt:
        .quad   0
        .quad   0x00CF9A000000FFFF      /* 0x08: flat 32-bit code */
        .quad   0x00CF92000000FFFF      /* 0x10: flat 32-bit data */
gdt_end:
        .align 4
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt
fpu_cw:
        .word   0x027F                  /* all exceptions masked, PC=53 bits, RC=nearest */

        .section .bss
        .align 16
stack_bottom:
        .skip   65536
stack_top:
