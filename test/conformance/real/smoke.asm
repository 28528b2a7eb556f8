; smoke: the harness itself — print macros, a real-mode fault, PM entry/exit, a PM fault.
%include "conf.inc"
        mov     eax, 0x12345678
        mov     ebx, 0x9abcdef0
        DUMP    "rm-regs", FL_ARITH
        DUMPSEG "rm-segs"
        PRINT   "hex "
        PHEX8   0xab
        PRINT   " "
        PHEX16  0xcdef
        PRINT   " "
        PHEX32  eax
        NL
        mov     dword [0x10000-0x10000+0x600], 0x04030201
        DUMPMEM "mem", 0x600, 4
        EXPECT_FAULT .r1
        xor     cx, cx
        div     cl
.r1:    DUMP    "after-de", 0
        ENTER_PM32
        DUMP    "pm-regs", FL_ARITH
        DUMPSEG "pm-segs"
        EXPECT_FAULT .r2
        mov     ax, 0x77
        mov     ds, ax
.r2:    mov     dword [VAR_SCRATCH], 0
        EXPECT_FAULT .r3
        ud2
.r3:    LEAVE_PM32
        DUMPSEG "rm-again"
        EXIT_OK
%include "conf_end.inc"
