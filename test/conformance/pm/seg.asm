; Segmentation: segment-register loads and their checks (null, present, type, DPL/RPL/CPL,
; conforming, LDT, beyond-table), accessed bits,

; LAR/LSL/VERR/VERW/ARPL results with ZF, at CPL 0 and CPL 3.
%include "pmlib.inc"
%define LDT_AT 0x21000
main:
    SETDESC 0x30, 0x20000, 0xFFF, 0x92, 4      ; RW data, byte limit 0xFFF
    SETDESC 0x38, 0x20000, 0xFFFF, 0x90, 4     ; read-only data
    SETDESC 0x40, 0, 0xFFFFF, 0x98, 0xC        ; execute-only code
    SETDESC 0x48, 0, 0xFFFFF, 0xF2, 0xC        ; DPL 3 data
    SETDESC 0x50, 0x20000, 0xFFFF, 0x12, 4     ; not present data
    SETDESC 0x58, 0x20000, 0xFFF, 0x96, 4      ; expand-down, B=1
    SETDESC 0x60, 0x20000, 0xFFF, 0x96, 0      ; expand-down, B=0
    SETDESC 0x68, 0x20000, 0, 0x92, 0xC        ; G=1 limit 0 -> 0xFFF
    SETDESC 0x70, 0, 0xFFFFF, 0x9E, 0xC        ; conforming readable code DPL0
    SETDESC 0x78, LDT_AT, 0x17, 0x82, 0        ; LDT
    SETDESC 0x80, 0x00080010, 0x1234, 0xEC, 0  ; (call gate, DPL3: fields arbitrary)
    SETDESC 0x88, 0, 0xFFFFF, 0xB2, 0xC        ; DPL 1 data
    SETDESC 0x90, 0x20000, 0x7FFFF, 0x92, 0x8  ; G=1 limit 0x7FFFF -> 0x7FFFFFFF
    SETDESC 0x98, 0x30000, 0x67, 0x8B, 0       ; busy 386 TSS
    SETDESC 0xA0, 0, 0xFFFFF, 0xFA, 0xC        ; DPL3 code, not readable
    SETDESC 0xA8, 0, 0xFFFFF, 0xFE, 0xC        ; DPL3 conforming readable code... (exec/read)
    SETDESC 0xB0, 0x20000, 0xFFFF, 0x94, 4     ; read-only expand-down (limit 0xFFFF)
    SETDESC 0xB8, 0x30000, 0x2B, 0x81, 0       ; available 286 TSS
    DESCAT LDT_AT + 8, 0x20100, 0xFF, 0x92, 4  ; LDT[1] data, base 0x20100
    DESCAT LDT_AT + 16, 0x20000, 0xFF, 0xF2, 4 ; LDT[2] DPL3 data
    mov ax, 0x78
    lldt ax

    PLN "-- loads at CPL 0"
    LOADSEG "ds null", ds, 0
    LOADSEG "ds null rpl3", ds, 3
    LOADSEG "ss null", ss, 0
    LOADSEG "ds notpresent", ds, 0x50
    LOADSEG "es notpresent rpl2", es, 0x52
    LOADSEG "ss notpresent", ss, 0x50
    LOADSEG "ds execonly", ds, 0x40
    LOADSEG "fs conforming readable", fs, 0x70
    LOADSEG "ss readonly", ss, 0x38
    LOADSEG "ss code", ss, 0x08
    LOADSEG "ss dpl3", ss, 0x4B
    LOADSEG "ss rpl3", ss, 0x13
    LOADSEG "ds dpl3", ds, 0x48
    LOADSEG "ds tss", ds, 0x2B
    LOADSEG "ds ldt-desc", ds, 0x78
    LOADSEG "gs beyond gdt", gs, 0x1000
    LOADSEG "gs beyond gdt rpl3", gs, 0x1003
    LOADSEG "ds dpl1 rpl1", ds, 0x89
    LOADSEG "ds dpl1 rpl2", ds, 0x8A
    LOADSEG "ds ldt[1]", ds, 0x0C
    LOADSEG "ds ldt[3] beyond", ds, 0x1C
    LOADSEG "ds ldt[2] dpl3", ds, 0x17
    LOADSEG "ss ldt[2] dpl3", ss, 0x17
    LOADSEG "es null gdt-index0 ti", es, 0x04

    PLN "-- loads at CPL 3"
    R3LOAD "ds kdata", ds, 0x10
    R3LOAD "ds kdata rpl3", ds, 0x13
    R3LOAD "ds conforming readable", ds, 0x70
    R3LOAD "ds execonly dpl3", ds, 0xA3
    R3LOAD "ds conforming dpl3", ds, 0xAB
    R3LOAD "ss kdata", ss, 0x10
    R3LOAD "ss udata rpl0", ss, 0x20
    R3LOAD "ss null", ss, 0
    R3LOAD "es null", es, 3
    R3LOAD "ds ldt[2]", ds, 0x17
    R3LOAD "ds ldt[1] dpl0", ds, 0x0F

    PLN "-- segment write through base"
    mov ax, 0x0C
    mov es, ax
    mov dword [es:0x10], 0xCAFEBABE
    call flat
    P32 "lin 20110", [0x20110]

    PLN "-- LAR LSL VERR VERW at CPL 0"
    call lar_all
    PLN "-- LAR LSL VERR VERW at CPL 3"
    mov eax, lar_r3
    mov ebx, 2
    call to_ring3

    PLN "-- ARPL"
    mov ax, 0x0010
    mov bx, 0x0003
    arpl ax, bx
    PFLAGS "f1"
    P16 "r1", ax
    mov ax, 0x0013
    mov bx, 0x0001
    arpl ax, bx
    PFLAGS "f2"
    P16 "r2", ax
    mov word [0x20040], 0x1231
    mov bx, 0x0002
    arpl [0x20040], bx
    PFLAGS "f3"
    P16 "r3", [0x20040]
    ; accessed bit was set in the GDT by the loads above
    P32 "gdt30 hi", [gdt + 0x34]
    P32 "ldt1 hi", [LDT_AT + 12]
    ret

lar_r3:
    call lar_all
    int 0x7F

lar_tab: dw 0x08, 0x10, 0x1B, 0x28, 0x2B, 0x30, 0x38, 0x40, 0x48, 0x50, 0x58, 0x60, 0x68
         dw 0x70, 0x73, 0x78, 0x80, 0x83, 0x88, 0x8B, 0x98, 0xA3, 0xAB, 0xB0, 0xB8, 0x0C, 0x0F, 0x17, 0x1C
         dw 0, 3, 0x1000, 0xFFFF
lar_all:
    mov esi, lar_tab
.l: movzx ebx, word [esi]
    cmp bx, 0xFFFF
    je .d
    mov eax, ebx
    call hex16
    call space
    mov eax, 0xDEADBEEF
    lar eax, bx
    setz cl
    and eax, 0xFFF0FFFF         ; bits 19:16 are undefined per SDM
    call hex32
    mov al, cl
    add al, '0'
    call putc
    call space
    mov eax, 0xDEADBEEF
    lsl eax, bx
    setz cl
    call hex32
    mov al, cl
    add al, '0'
    call putc
    call space
    mov ax, 0x5A5A
    lar ax, bx
    call hex16
    call space
    verr bx
    setz al
    add al, '0'
    call putc
    verw bx
    setz al
    add al, '0'
    call putc
    call newline
    add esi, 2
    jmp .l
.d: ret
%include "pmend.inc"
