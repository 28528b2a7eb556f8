; The same kinds of cases in 32-bit protected mode (flat segments, CPL0): default 32-bit operand/address size,
; 0x66/0x67 prefixes selecting 16-bit forms, stack ops, string ops with ESI/EDI, #DE through the IDT, and the
; way back to real mode (LEAVE_PM32).
%include "conf.inc"
        ENTER_PM32
        LOOP2   "pm-add32", V32, 6, V32, 6, F2, 2, 0xffffffff, add eax, ebx
        LOOP2   "pm-sub16", V32, 6, V32, 6, F2, 2, 0xffffffff, sub ax, bx
        LOOP2   "pm-rcl8", V32, 6, CNT, 3, F2, 2, 0xfffff7ff, rcl al, cl
        LOOP2   "pm-imul", V32, 6, V32, 6, F2, 2, 0x801, imul eax, ebx, 0x1001
        LOOP2   "pm-lea16", V32, 6, V32, 6, F2, 2, 0xffffffff, lea dx, [bx+si+0x7fff]
        LOOP2   "pm-lea32", V32, 6, V32, 6, F2, 2, 0xffffffff, lea edx, [eax+ebx*8-4]
        mov     ebx, 0x200000
        mov     dword [ebx], 0x11223344
        mov     eax, 0
        mov     ax, [ebx]
        DUMP    "pm-o16-load"
        a16 mov ecx, [bx+si]                    ; 16-bit addressing in 32-bit code: [0x0000+si]
        DUMP    "pm-a16-load"
        push    word 0x1234
        push    dword 0x56789abc
        pop     eax
        pop     dx
        DUMP    "pm-push-pop"
        mov     esi, 0x200000
        mov     edi, 0x200010
        mov     ecx, 3
        rep movsb
        mov     esi, 0x200000
        mov     edi, 0x200020
        mov     cx, 2
        a16 rep movsw                           ; uses SI/DI/CX: SI=0 -> copies from linear 0
        DUMP    "pm-strings"
        DUMPMEM "pm-strings-mem", 0x200000, 0x24
        EXPECT_FAULT .r1
        xor     ecx, ecx
        div     ecx
.r1:    DUMP    "pm-after-de", 0
        call    far [farptr]
        DUMP    "pm-after-farcall"
        LEAVE_PM32
        DUMP    "back-in-real-mode"
        DUMPSEG "back-in-real-mode"
        EXPECT_FAULT .r2
        xor     cl, cl
        div     cl
.r2:    EXIT_OK

        bits    32
farsub: DUMPSEG "pm-farsub"
        retf
farptr: dd      farsub
        dw      SEL_CODE32
        align   4
V32:    dd      0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x12345678
CNT:    dd      1, 8, 9
F2:     dd      0x002, 0x8d7
%include "conf_end.inc"
