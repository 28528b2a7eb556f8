; Virtual-8086 mode: entry through a 32-bit IRET with VM=1 (frame with ES/DS/FS/GS), 16-bit
; code with real-mode segment arithmetic, INT n with IOPL=3 through a DPL-3 interrupt gate to
; a ring-0 handler (the frame it receives: EIP CS EFLAGS ESP SS ES DS FS GS; DS/ES/FS/GS are 0
; inside it) and IRET from it back to v86 with a modified DS, INT n to a DPL-0 gate
; (#GP(vec*8+2)) and (-DSDM only) to a gate whose code segment is not DPL 0 (#GP(sel)), INT3 to a DPL-0
; gate, the IOPL-sensitive CLI/STI/PUSHF/POPF/INT n/IRET at IOPL 3 (work; POPF cannot change
; IOPL, PUSHFD clears VM in the image) and IOPL 0 (#GP(0)), IN/OUT governed by the TSS I/O
; bitmap whatever the IOPL (port 0xE9 works at IOPL 0, 0x60 faults at IOPL 3), HLT (#GP(0)),
; and leaving v86 for good through a #GP monitor and through #DE.
; QEMU 7.2 deviation: INT n from v86 through a gate whose code segment has DPL != 0 must raise
; #GP(code selector) (SDM, INT pseudo-code; Bochs does); QEMU runs the handler at that CPL
; (with SS1 = 0 in the TSS it raises #TS(0) instead). That case is assembled only with -DSDM;
; the -DSDM build is checked against v86-sdm.expected, recorded from Bochs 2.7.
; A small monitor (#GP handler) prints each #GP raised in v86 (error code, IP, VM/IOPL/IF of
; the pushed EFLAGS, opcode), skips the instruction and resumes; on HLT it returns to ring 0.
%include "pmlib.inc"
%define VSEG 0x1000                 ; v86 CS: this image (linear 0x10000)
%define V(x) ((x) - 0x10000)

BITS 16
%macro VSTR 1
    jmp %%after
%%s: db %1, 0
%%after:
    push si
    mov si, V(%%s)
    call v_puts
    pop si
%endmacro
%macro VLN 1
    VSTR {%1, 10}
%endmacro
%macro VP 2 ; "label=XXXX"
    push ax
    mov ax, %2
    VSTR {%1, '='}
    call v_hex16
    call v_nl
    pop ax
%endmacro
BITS 32

; run v86 code at label %1 with EFLAGS %2 (VM is added); it ends with HLT (the monitor
; returns here) or with an exception other than #GP (printed, resumes here)
%macro V86 2
    TRY %%n
    call %%go
    jmp %%n
%%go:
    mov [r3_esp], esp
    push dword 0                    ; GS
    push dword 0                    ; FS
    push dword 0x2000               ; DS
    push dword 0x3000               ; ES
    push dword 0x7000               ; SS
    push dword 0xFFF0               ; ESP
    push dword (%2) | 0x20000       ; EFLAGS
    push dword VSEG                 ; CS
    push dword V(%1)                ; EIP
    iretd
%%n:
    mov dword [rec_eip], 0
%endmacro

main:
    IDTGATE 13, gp_mon, 0x8E
    IDTGATE 0x40, int40, 0xEE       ; interrupt gate, DPL 3
    IDTGATE 0x41, int40, 0xEF       ; trap gate, DPL 3
    IDTGATE 0x42, int40, 0x8E       ; DPL 0
    SETDESC 0x30, 0, 0xFFFFF, 0xBB, 0xC   ; DPL 1 code
    SETGATE IDT_BASE, 0x43, int40, 0x30, 0xEE, 0   ; DPL 3 gate to a DPL 1 code segment
    ; a valid ring-1 stack, so that only the code segment's DPL is wrong for INT 0x43
    SETDESC 0x38, 0, 0xFFFFF, 0xB2, 0xC   ; DPL 1 data
    mov dword [tss + 0x10], 0x39
    mov dword [0x20010], 0

    PLN "-- v86 IOPL=3"
    V86 v_iopl3, 0x3002
    P32 "linear 20010", [0x20010]
    P32 "linear 30020", [0x30020]
    pushfd
    pop eax
    P32 "ring0 efl", eax
    mov eax, ds
    P32 "ring0 ds", eax

    PLN "-- v86 IOPL=0"
    V86 v_iopl0, 0x0002
    PLN "-- v86 IOPL=1"
    V86 v_iopl1, 0x1002

    PLN "-- #DE in v86 (generic handler, leaves v86)"
    V86 v_de, 0x3002
    pushfd
    pop eax
    and eax, 0x20000
    P32 "vm after", eax
    mov eax, ss
    P32 "ss after", eax

    IDTGATE 13, isr_stubs + 13*16, 0x8E
    ret

; ---------------------------------------------------------------- ring-0 handlers
vsegs: dw 0, 0, 0, 0
int40:                               ; INT 0x40/0x41 from v86
    mov [ss:vsegs], ds
    mov [ss:vsegs+2], es
    mov [ss:vsegs+4], fs
    mov [ss:vsegs+6], gs
    pushad
    mov ax, KDATA
    mov ds, ax
    mov es, ax
    PLN "  in handler"
    P16 "  h ds", [vsegs]
    P16 "  h es", [vsegs+2]
    P16 "  h fs", [vsegs+4]
    P16 "  h gs", [vsegs+6]
    mov eax, ss
    P32 "  h ss", eax
    mov eax, esp
    add eax, 32
    P32 "  h esp", eax
    pushfd
    pop eax
    P32 "  h efl", eax
    PLN "  frame: eip cs efl esp ss es ds fs gs"
    lea esi, [esp+32]
    mov ecx, 9
    call dumpd
    mov dword [esp+28], 0xBEEF       ; EAX
    mov dword [esp+32+24], 0x2001    ; DS
    popad
    iretd

gp_mon:                              ; #GP: from v86 -> print, skip, resume; else generic
    test dword [esp+12], 0x20000
    jnz .vm
    jmp isr_stubs + 13*16
.vm:
    pushad
    mov ax, KDATA
    mov ds, ax
    mov es, ax
    PSTR "  #GP e="
    mov eax, [esp+32]
    call hex16
    PSTR " ip="
    mov eax, [esp+36]
    call hex16
    PSTR " fl="
    mov eax, [esp+44]
    and eax, 0x23200
    call hex32
    PSTR " op="
    movzx eax, word [esp+40]
    shl eax, 4
    add eax, [esp+36]
    movzx ebx, byte [eax]
    mov eax, ebx
    call hex8
    cmp bl, 0x66
    jne .n1
    movzx eax, word [esp+40]
    shl eax, 4
    add eax, [esp+36]
    movzx eax, byte [eax+1]
    call hex8
.n1:
    call newline
    cmp bl, 0xF4
    je .exit
    mov ecx, 2
    cmp bl, 0xCD
    je .len
    cmp bl, 0x66
    je .len
    mov al, bl
    and al, 0xFC
    cmp al, 0xE4                     ; IN/OUT imm8
    je .len
    mov ecx, 1
.len:
    add [esp+36], ecx
    popad
    add esp, 4
    iretd
.exit:                               ; HLT: leave v86 for good
    mov ax, KDATA
    mov ss, ax
    mov esp, [r3_esp]
    call flat
    ret

; ---------------------------------------------------------------- v86 code
BITS 16
v_putc:
    push dx
    mov dx, 0xE9
    out dx, al
    pop dx
    ret
v_nl:
    push ax
    mov al, 10
    call v_putc
    pop ax
    ret
v_puts:                              ; cs:si
    push ax
    push si
.l: cs lodsb
    test al, al
    jz .d
    call v_putc
    jmp .l
.d: pop si
    pop ax
    ret
v_hex16:                             ; ax
    push ax
    push bx
    push cx
    mov bx, ax
    mov cx, 4
.l: rol bx, 4
    mov al, bl
    and al, 15
    add al, '0'
    cmp al, '9'
    jbe .p
    add al, 7
.p: call v_putc
    loop .l
    pop cx
    pop bx
    pop ax
    ret

v_iopl3:
    VP "cs", cs
    VP "ds", ds
    VP "es", es
    VP "fs", fs
    VP "gs", gs
    VP "ss", ss
    VP "sp", sp
    ; segment arithmetic: DS=0x2000 -> linear 0x20000, ES=0x2001 -> 0x20010
    mov word [0x10], 0x1234
    mov ax, 0x2001
    mov es, ax
    VP "es:0", [es:0]
    mov word [es:2], 0x5678
    VP "ds:12", [0x12]
    mov ax, 0x3000
    mov es, ax
    mov bx, 0x20
    mov word [es:bx], 0xABCD
    mov ax, es
    mov ds, ax
    VP "3000:20 via ds", [bx]
    mov ax, 0x2000
    mov ds, ax
    ; flags
    pushf
    pop ax
    VP "pushf", ax
    o32 pushf
    pop eax
    pop ax
    VP "pushfd hi", ax
    cli
    pushf
    pop ax
    VP "after cli", ax
    sti
    pushf
    pop ax
    VP "after sti", ax
    push word 0x08D7                 ; IOPL 0, IF 0, arithmetic flags set
    popf
    pushf
    pop ax
    VP "popf 08D7", ax
    push dword 0x000008D6            ; IOPL 0, IF 0, CF 0
    o32 popf
    o32 pushf
    pop eax
    VP "popfd lo", ax
    pop ax
    VP "popfd hi", ax
    ; IRET within v86
    pushf
    push cs
    push word V(.ir)
    iret
    VLN "iret fell through"
.ir:
    VLN "iret ok"
    ; I/O: the bitmap decides even at IOPL 3
    in al, 0x80
    VLN "in 80 ok"
    in al, 0x60
    VLN "in 60 done"
    mov dx, 0x80
    in ax, dx
    VLN "in ax 80 done"
    out 0xE8, al
    VLN "out E8 done"
    ; INT n through the DPL-3 interrupt gate
    mov ax, 0x1111
    sti
    cmp ax, ax
    int 0x40
    VP "after int40 ax", ax
    VP "after int40 ds", ds
    mov ax, 0x2000
    mov ds, ax
    mov ax, 0x2222
    sti
    stc
    int 0x41                         ; trap gate
    VP "after int41 ax", ax
    mov ax, 0x2000
    mov ds, ax
    int 0x42                         ; DPL 0 gate
    VLN "int42 done"
%ifdef SDM
    int 0x43                         ; gate to a DPL-1 code segment: #GP(0x30)
    VLN "int43 done"
%endif
    int3                             ; DPL-0 gate for vector 3
    VLN "int3 done"
    hlt

v_iopl0:
    VLN "out E9 at IOPL 0"
    cli
    VLN "cli done"
    sti
    VLN "sti done"
    pushf
    VLN "pushf done"
    push word 0
    popf
    VLN "popf done"
    o32 pushf
    VLN "pushfd done"
    int 0x40
    VLN "int40 done"
    iret
    VLN "iret done"
    in al, 0x80
    VLN "in 80 ok"
    in al, 0x60
    VLN "in 60 done"
    int3
    VLN "int3 done"
    hlt

v_iopl1:
    cli
    int 0x40
    in al, 0x80
    VLN "in 80 ok"
    hlt

v_de:
    VLN "div by 0"
    xor dx, dx
    xor cx, cx
    mov ax, 5
    div cx
    VLN "no #DE?"
    hlt
BITS 32
%include "pmend.inc"
