; Stack and flags: PUSHF/POPF (which EFLAGS bits stick in real mode; IF is kept 0 because QEMU's PIT may
; interrupt), PUSH/POP of all kinds, PUSH SP (286+: the old value), PUSHA/POPA 16/32, ENTER levels 0/1/3
; (16- and 32-bit operand size), LEAVE, CALL/RET near/far/imm, INT/IRET, EFLAGS.AC and .ID toggling.
%include "conf.inc"
%macro POPFTEST 1
        push    dword %1
        popfd
        pushfd
        pop     eax
        PRINT   "popfd "
        PHEX32  %1
        PRINT   " -> "
        PHEX32  eax
        NL
%endmacro
        POPFTEST 0x00000000
        POPFTEST 0x00000cd5
        POPFTEST 0x0000f0d7                     ; IOPL, NT, bit 15
        POPFTEST 0x003c0000                     ; AC, VIF, VIP (not settable without VME), ID
        POPFTEST 0xffc3fcff                     ; everything except IF, RF, VM, TF
        POPFTEST 0x00010000                     ; RF
        POPFTEST 0x00020000                     ; VM cannot be set by POPFD
        push    word 0x7fd7 & ~0x200 & ~0x100
        popf
        pushf
        pop     ax
        movzx   eax, ax
        PRINT   "popf16 -> "
        PHEX16  eax
        NL
        push    dword 2
        popfd
        ; push/pop forms
        mov     ebx, 0x12345678
        push    bx
        push    ebx
        push    word 0x8001
        push    dword 0x80000001
        push    byte -5
        o32 push byte -6
        push    sp
        push    esp
        push    cs
        push    ds
        o32 push es
        push    fs
        push    gs
        push    ss
        DUMP    "after-pushes"
        DUMPMEM "stack", 0x7000 - 46, 46
        mov     word [0x600], 0xbeef
        pop     word [0x600]
        pop     gs
        pop     fs
        o32 pop es
        pop     ds
        pop     ecx
        pop     eax
        pop     edx
        pop     si
        pop     di
        pop     ebp
        DUMP    "after-pops"
        add     sp, 12
        mov     sp, 0x7000
        ; pop into esp / sp
        push    word 0x1234
        pop     sp
        DUMP    "pop-sp"
        mov     sp, 0x7000
        ; PUSHA / POPA
        mov     eax, 0x11111111
        mov     ecx, 0x22222222
        mov     edx, 0x33333333
        mov     ebx, 0x44444444
        mov     ebp, 0x55555555
        mov     esi, 0x66666666
        mov     edi, 0x77777777
        pusha
        DUMPMEM "pusha", 0x7000 - 16, 16
        pushad
        DUMPMEM "pushad", 0x7000 - 48, 32
        mov     dword [0x7000-48+12], 0xdeadbeef  ; saved ESP is ignored by POPAD
        xor     eax, eax
        xor     ecx, ecx
        xor     edx, edx
        xor     ebx, ebx
        xor     ebp, ebp
        xor     esi, esi
        xor     edi, edi
        popad
        DUMP    "popad"
        mov     word [0x7000-16+6], 0x1111
        popa
        DUMP    "popa"
        ; ENTER / LEAVE
        mov     ebp, 0x00006f00
        mov     dword [0x6f00-4], 0xa1a1a1a1
        mov     dword [0x6f00-8], 0xb2b2b2b2
        mov     dword [0x6f00-12], 0xc3c3c3c3
        mov     word [0x6f00-2], 0x6efe
        mov     word [0x6f00-4], 0x6efc
        enter   8, 0
        DUMP    "enter16-0"
        leave
        DUMP    "leave16-0"
        mov     bp, 0x6f00
        enter   4, 1
        DUMP    "enter16-1"
        DUMPMEM "enter16-1-frame", 0x7000 - 12, 12
        leave
        mov     bp, 0x6f00
        enter   0x10, 3
        DUMP    "enter16-3"
        DUMPMEM "enter16-3-frame", 0x7000 - 12, 12
        leave
        DUMP    "leave16-3"
        mov     ebp, 0x6f00
        o32 enter 8, 3
        DUMP    "enter32-3"
        DUMPMEM "enter32-3-frame", 0x7000 - 24, 24
        o32 leave
        DUMP    "leave32-3"
        mov     sp, 0x7000
        ; CALL / RET
        call    near sub1
        DUMP    "call-near"
        call    0xF000:R(subfar)
        DUMP    "call-far"
        mov     ax, R(sub1)
        call    ax
        DUMP    "call-reg"
        mov     word [0x600], R(subfar)
        mov     word [0x602], 0xF000
        call    far [0x600]
        DUMP    "call-far-mem"
        call    dword sub32
        DUMP    "call-o32"
        ; INT / IRET via IVT vector 0x40
        mov     word [0x40*4], R(isr40)
        mov     word [0x40*4+2], 0xF000
        push    dword 0x8d7
        popfd
        int     0x40
        DUMP    "after-int"
        push    dword 2
        popfd
        pushf
        pop     ax
        EXIT_OK

sub1:   DUMP    "in-sub1"
        ret
subfar: DUMP    "in-subfar"
        retf
sub32:  DUMP    "in-sub32"
        DUMPMEM "sub32-ret", 0x7000 - 4, 4
        o32 ret 0
isr40:  DUMP    "in-isr40"
        DUMPMEM "isr40-frame", 0x7000 - 6, 6
        iret
%include "conf_end.inc"
